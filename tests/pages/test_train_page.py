"""Train page in AppTest: launch a real background job from the form, watch it finish, cancel one,
refuse bad input, and rebuild everything from the run store after a "restart" (a fresh AppTest)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import engine.runs as store
from engine.jobs import effective_status
from engine.training.config import read_run_config
from studio.widgets.train_form import build_config, parse_values

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")
LAUNCH = "FormSubmitter:train_form-Launch training"


def open_train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/train.py").run()
    assert not at.exception
    return at


def fill_small_run(at: AppTest, *, epochs: int) -> None:
    at.selectbox(key="train_model").set_value("test_resnet").run()
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_k").set_value(2)
    at.slider(key="train_holdout").set_value(0.2)
    at.selectbox(key="train_aug").set_value("preset: none")
    at.number_input(key="train_workers").set_value(0)


def wait_for(run_dir: Path, states: set[str], timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = effective_status(run_dir)
        if status["state"] in states:
            return status
        time.sleep(1.0)
    raise AssertionError(f"run {run_dir.name} still {effective_status(run_dir)['state']} after {timeout} s")


def test_empty_workspace_says_what_to_do(train_workspace):
    at = open_train_page()
    assert any("No runs yet" in i.value for i in at.info)


def test_launch_from_the_form_then_restart_rebuilds_the_monitor(train_workspace):
    at = open_train_page()
    fill_small_run(at, epochs=1)
    at.button(key=LAUNCH).click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Launched 1 run" in s.value for s in at.success)
    runs = store.list_runs(train_workspace)
    assert len(runs) == 1
    run_dir = Path(runs.at[0, "path"])
    config = read_run_config(run_dir)
    assert (config.model.name, config.train.epochs, config.split.k) == ("test_resnet", 1, 2)

    status = wait_for(run_dir, {"done", "failed"})
    assert status["state"] == "done", status.get("error")

    # A studio restart (a fresh session) rebuilds the monitor from the run directory alone.
    at = open_train_page()
    assert not at.exception
    overview = at.dataframe[0].value
    assert overview.loc[0, "state"].endswith("done")
    assert overview.loc[0, "val_accuracy"] == pytest.approx(store.list_runs(train_workspace).at[0, "val_accuracy"])
    assert any("fold 1 · done" in p.text for p in at.get("progress") if hasattr(p, "text")) or at.get("progress")
    assert at.get("plotly_chart"), "learning curves are drawn once epochs are recorded"


def test_cancel_button_stops_a_running_job(train_workspace):
    at = open_train_page()
    fill_small_run(at, epochs=30)
    at.button(key=LAUNCH).click().run()
    run_dir = Path(store.list_runs(train_workspace).at[0, "path"])
    wait_for(run_dir, {"running"}, timeout=120)
    at.button(key=f"cancel_{run_dir.name}").click().run()
    assert not at.exception
    assert wait_for(run_dir, {"cancelled", "failed"}, timeout=60)["state"] == "cancelled"


def test_bad_label_smoothing_is_named_and_nothing_is_written(train_workspace):
    at = open_train_page()
    fill_small_run(at, epochs=1)
    at.text_input(key="train_ls").set_value("0.1, lots")
    at.button(key=LAUNCH).click().run()
    assert not at.exception
    assert any("label smoothing" in e.value for e in at.error)
    assert store.list_runs(train_workspace).empty


def test_build_config_makes_a_study_from_several_smoothing_values(demo_dataset, tmp_path):
    config = build_config(
        demo_dataset,
        tmp_path,
        model="test_vit",
        pretrained="none",
        image_size=32,
        k=3,
        holdout=0.1,
        group=None,
        epochs=2,
        batch=16,
        optimizer="sgd",
        lr=0.01,
        scheduler="step",
        loss="focal",
        smoothing="0.0, 0.1",
        workers=0,
        augment="preset: light",
        views=["identity", "vflip"],
        device="cpu",
        name="",
    )
    assert config["vary"] == {"train.label_smoothing": [0.0, 0.1]}
    assert config["augment"]["transform"]["__class_fullname__"] == "Compose"
    from engine.training.config import load_run_configs

    configs = load_run_configs(config)
    assert [c.train.label_smoothing for c in configs] == [0.0, 0.1]
    assert configs[0].train.data_cache and not configs[0].train.compile and not configs[0].train.auto_batch_size
    assert parse_values("0.2", field="x") == [0.2]


def status_text(at: AppTest) -> str:
    """The weights' status box (drawn as success / info / warning / error)."""
    boxes = [*at.success, *at.info, *at.warning, *at.error]
    found = [b.value for b in boxes if "**Weights:" in b.value]
    assert len(found) == 1, [b.value for b in boxes]
    return found[0]


def test_weights_status_follows_the_model_and_the_cache(train_workspace, hub_cache):
    hub_cache.add("test_resnet")
    at = open_train_page()
    # The default model has no cached weights: from scratch, the images' own size (32 px).
    assert at.selectbox(key="train_model").value == "test_efficientnet"
    assert at.selectbox(key="train_pretrained").value == "none"
    assert "**Weights: none.**" in status_text(at) and at.number_input(key="train_size").value == 32
    assert any("median shorter side (32 px)" in c.value for c in at.caption)
    # test_resnet is in the cache: timm's weights are picked, with their input size and normalization.
    at.selectbox(key="train_model").set_value("test_resnet").run()
    assert not at.exception
    assert at.selectbox(key="train_pretrained").value == "hub"
    text = status_text(at)
    assert "**Weights: cached.**" in text and "timm/test_resnet.r160_in1k" in text
    assert "160x160 px" in text and "mean (0.500, 0.500, 0.500)" in text and "std (0.500, 0.500, 0.500)" in text
    assert at.number_input(key="train_size").value == 160
    # Not cached and no downloads: the error names both ways out, and Launch writes nothing.
    at.selectbox(key="train_model").set_value("test_convnext").run()
    at.selectbox(key="train_pretrained").set_value("hub").run()
    text = status_text(at)
    assert "**Weights: missing.**" in text and "timm/test_convnext.r160_in1k" in text and str(hub_cache.root) in text
    assert "allow downloads" in text and "local weights file" in text
    at.button(key=LAUNCH).click().run()
    assert not at.exception
    assert any("timm/test_convnext.r160_in1k" in e.value for e in at.error if "**Weights:" not in e.value)
    assert store.list_runs(train_workspace).empty


def test_launch_with_cached_hub_weights_records_them(train_workspace, hub_cache):
    path, _ = hub_cache.add("test_resnet")
    at = open_train_page()
    fill_small_run(at, epochs=1)
    at.number_input(key="train_size").set_value(32)
    at.button(key=LAUNCH).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_dir = Path(store.list_runs(train_workspace).at[0, "path"])
    source = read_run_config(run_dir).model.weights_source
    assert (source.kind, source.hf_hub_id, source.path) == ("hub", "timm/test_resnet.r160_in1k", str(path))
    # The job process loads them from the same cache (its environment has HF_HUB_CACHE) and trains: a batch is
    # enough to know (the training fixture cancels it); engine tests check the weights themselves.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = effective_status(run_dir)
        if status["state"] in ("failed", "done") or (status.get("folds", {}).get("0", {}).get("batch") or 0) > 0:
            break
        time.sleep(0.5)
    assert status["state"] in ("running", "done"), status.get("error")


def test_k_defaults_to_what_the_smallest_class_allows_and_says_so_before_launch(tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "tiny-classes"
    for label, count in (("common", 30), ("rare", 3)):
        (root / label).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (48, 40), (i * 8, 0, 0)).save(root / label / f"{label}{i}.png")
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(root))
    at = open_train_page()
    warning = [w.value for w in at.warning if "Folds default to" in w.value]
    assert warning and "instead of the usual 5" in warning[0] and "'rare'" in warning[0]
    assert at.number_input(key="train_k").value < 5
    assert at.number_input(key="train_size").value == 32  # median shorter side 40 -> nearest multiple of 32


def test_launch_on_a_dataset_with_a_corrupt_image_says_it_is_left_out(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from engine.data import open_dataset

    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog")):
        (root / "train" / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.random.default_rng(10 * c + i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / name / f"{i}.png")
    broken = root / "train" / "cat" / "0.png"
    broken.write_bytes(broken.read_bytes()[:60])
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(open_dataset(root).spec_path))
    try:
        at = open_train_page()
        fill_small_run(at, epochs=1)
        at.number_input(key="train_size").set_value(16)
        at.button(key=LAUNCH).click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert any("Launched 1 run" in s.value for s in at.success)
        (warning,) = [w.value for w in at.warning if "left out of this run" in w.value]
        assert "'cat/0.png'" in warning and "corrupt or truncated" in warning
    finally:
        from engine.jobs import create_launcher

        for run_dir in (ws / "runs").glob("*") if (ws / "runs").is_dir() else []:
            if effective_status(run_dir).get("alive"):
                create_launcher(workspace=ws).cancel(run_dir)
