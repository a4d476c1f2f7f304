"""The Augmentation lab in AppTest on the demo dataset: build, preview, seed, import, errors, use for training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from engine.augment import Pipeline, dump_pipeline, load_pipeline_file, preset

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")


@pytest.fixture
def at(workspace, demo_spec_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))  # written once per test run
    app = AppTest.from_file(APP, default_timeout=60)
    app.switch_page("../pages/augment.py").run()  # straight to the page: the Data page's scan is not needed
    assert not app.exception, [e.value for e in app.exception]
    return app


def spec(at: AppTest) -> dict:
    return at.session_state["aug_spec"]


def step_names(at: AppTest) -> list[str]:
    return [t["__class_fullname__"] for t in spec(at)["transform"]["transforms"]]


def preview_urls(at: AppTest) -> list[str]:
    """Media URLs (content hashes) of the preview's draws."""
    return [img.proto.imgs[0].url for img in at.get("image") if img.proto.imgs[0].caption.startswith("draw ")]


def widget(at: AppTest, kind: str, suffix: str):
    """The step widget whose key ends with ``suffix`` (keys carry a revision number)."""
    found = [w for w in getattr(at, kind) if w.key and w.key.startswith("aug_step_") and w.key.endswith(suffix)]
    assert len(found) == 1, [w.key for w in getattr(at, kind)]
    return found[0]


def open_tab(at: AppTest, tab: str) -> AppTest:
    at.session_state["aug_tab"] = tab
    return at.run()


def yaml_area(at: AppTest):
    return next(t for t in at.text_area if t.key.startswith("aug_yaml_"))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def test_page_renders_preset_preview_and_tta(at):
    assert at.title[0].value == "Augmentation lab"
    assert step_names(at) == ["RandomResizedCrop", "HorizontalFlip"]  # the light preset at 224 px
    assert len(preview_urls(at)) == 3 * 4  # 3 images x 4 draws
    originals = [i for i in at.get("image") if i.proto.imgs[0].caption.startswith("original")]
    assert len(originals) == 3
    assert not at.error
    at.run()
    assert not at.exception and step_names(at) == ["RandomResizedCrop", "HorizontalFlip"]
    open_tab(at, "Test-time views")
    assert not at.exception
    tta = [i for i in at.get("image") if i.proto.imgs[0].caption.startswith("rot90:")]
    assert len(tta) == 3  # one rot90 view per TTA image
    at.multiselect(key="aug_tta_views").set_value(["identity", "hflip"]).run()
    assert len([i for i in at.get("image") if i.proto.imgs[0].caption.startswith("hflip:")]) == 3
    assert not [i for i in at.get("image") if i.proto.imgs[0].caption.startswith("rot90:")]


def test_add_a_transform_and_change_its_parameter(at):
    at.selectbox(key="aug_add").set_value("Rotate")
    button(at, "Add").click().run()
    assert step_names(at) == ["RandomResizedCrop", "HorizontalFlip", "Rotate"]
    assert spec(at)["transform"]["transforms"][2]["limit"] == [-15.0, 15.0]
    widget(at, "slider", "_2_limit").set_value((-40.0, 25.0)).run()
    assert not at.exception
    assert spec(at)["transform"]["transforms"][2]["limit"] == [-40.0, 25.0]
    widget(at, "slider", "_2_p").set_value(1.0).run()
    assert spec(at)["transform"]["transforms"][2]["p"] == 1.0
    # move it to the top, then remove the flip
    next(b for b in at.button if b.key and b.key.endswith("_2_up")).click().run()
    assert step_names(at) == ["RandomResizedCrop", "Rotate", "HorizontalFlip"]
    next(b for b in at.button if b.key and b.key.endswith("_2_remove")).click().run()
    assert step_names(at) == ["RandomResizedCrop", "Rotate"]
    assert not at.exception


def test_seed_reproduces_and_changes_the_preview(at):
    first = preview_urls(at)
    at.run()
    assert preview_urls(at) == first  # a rerun draws the same pixels
    at.number_input(key="aug_seed").set_value(12345).run()
    changed = preview_urls(at)
    assert len(changed) == len(first) and changed != first
    at.number_input(key="aug_seed").set_value(0).run()
    assert preview_urls(at) == first
    button(at, "New seed").click().run()
    assert at.number_input(key="aug_seed").value != 0 and not at.exception


def test_one_image_many_draws(at):
    at.button_group(key="aug_mode").set_value("One image, many draws").run()
    assert not at.exception
    assert len(preview_urls(at)) == 12
    originals = [i for i in at.get("image") if i.proto.imgs[0].caption.startswith("original")]
    assert len(originals) == 1


def test_paste_yaml_imports_the_pipeline(at):
    imported = Pipeline.from_spec(preset("heavy", 96)).to_spec()
    open_tab(at, "Raw YAML")
    yaml_area(at).set_value(dump_pipeline(imported, "yaml"))
    button(at, "Apply").click().run()
    assert not at.exception and not at.error
    assert spec(at) == imported
    assert "OneOf" in step_names(at)
    assert any("Not in the catalogue" in c.value for c in at.caption)  # OneOf is edited in the YAML
    assert yaml.safe_load(yaml_area(at).value) == imported  # the editor shows the imported pipeline


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("transform: [unclosed", "not valid YAML"),
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: Blurr\n    p: 1\n",
            "'Blurr' is not an albumentations transform",
        ),
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: GaussNoise\n"
            "    p: 0.5\n    std_range: [0.9, 0.1]\n",
            "Step 1 (GaussNoise), parameter 'std_range'",
        ),
    ],
)
def test_bad_yaml_shows_the_engine_message(at, text, message):
    before = spec(at)
    open_tab(at, "Raw YAML")
    yaml_area(at).set_value(text)
    button(at, "Apply").click().run()
    assert not at.exception
    assert message in errors(at)
    assert spec(at) == before  # the last valid pipeline stays
    assert len(preview_urls(at)) == 12  # and the rest of the page keeps working


def test_use_for_training_writes_current_yaml(at, workspace):
    button(at, "Use for training").click().run()
    assert not at.exception
    saved = load_pipeline_file(workspace / "augment" / "current.yaml")
    assert saved == spec(at)
    assert any("Training uses this pipeline" in s.value for s in at.success)
    # a new session starts from the pipeline in use for training
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.switch_page("../pages/augment.py").run()
    assert fresh.session_state["aug_spec"] == saved


def test_load_preset_and_empty(at):
    at.selectbox(key="aug_start").set_value("empty")
    button(at, "Load").click().run()
    assert step_names(at) == [] and not at.exception
    assert any("pipeline is empty" in i.value for i in at.info)
    at.selectbox(key="aug_start").set_value("medium")
    at.number_input(key="aug_image_size").set_value(128)
    button(at, "Load").click().run()
    assert spec(at) == Pipeline.from_spec(preset("medium", 128)).to_spec()


def test_every_catalogue_transform_gets_widgets_that_keep_the_spec(at):
    from engine.augment import CATALOGUE

    pipeline = Pipeline()
    for name in CATALOGUE:
        pipeline = pipeline.added(name, image_size=64)
    everything = pipeline.to_spec()
    at.session_state["aug_spec"] = everything
    at.session_state["aug_rev"] = 100
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert spec(at) == everything  # drawing the widgets changes nothing by itself
    at.run()
    assert spec(at) == everything
    assert len([m for m in at.markdown if m.value.startswith("**")]) >= len(CATALOGUE)


def test_upload_imports_a_file_and_a_bad_one_shows_the_error(at):
    imported = Pipeline.from_spec(preset("medium", 64)).to_spec()
    upload = at.file_uploader(key="aug_upload")
    upload.set_value(("mine.json", dump_pipeline(imported, "json").encode(), "application/json")).run()
    assert not at.exception
    assert spec(at) == imported
    assert any("Imported mine.json" in s.value for s in at.success)
    at.file_uploader(key="aug_upload").set_value(("broken.yaml", b"transform: {__class_fullname__: Nope}", "text/yaml"))
    at.run()
    assert not at.exception
    assert "'Nope' is not an albumentations transform" in errors(at)
    assert spec(at) == imported


def test_the_lab_starts_from_the_train_forms_image_size(workspace, demo_spec_path, hub_cache, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    app = AppTest.from_file(APP, default_timeout=60)
    app.switch_page("../pages/augment.py").run()
    assert not app.exception
    assert app.session_state["aug_image_size"] == 32  # the demo's 32 px images, from scratch (nothing cached)
    hub_cache.add("test_efficientnet")  # the Train form's default model, now with timm's weights cached
    app = AppTest.from_file(APP, default_timeout=60)
    app.switch_page("../pages/augment.py").run()
    assert app.session_state["aug_image_size"] == 160  # their pretrained input size, as the Train form
    app.switch_page("../pages/train.py").run()
    assert not app.exception and app.number_input(key="train_size").value == 160
