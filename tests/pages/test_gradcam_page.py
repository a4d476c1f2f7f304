"""Grad-CAM page in AppTest on the real tiny study: two models side by side, switching method and target,
the upload path (through its studio functions: AppTest cannot upload), and the messages for an empty
workspace, a failed run and a missing weights file."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.errors import DatasetError
from studio import cam_loaders

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")


def open_gradcam() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/gradcam.py").run()
    assert not at.exception, at.exception
    return at


def images_shown(at: AppTest) -> int:
    return len(at.get("image"))


def captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption) + "\n".join(str(m.value) for m in at.markdown)


def test_two_models_side_by_side_with_predictions(study_env):
    at = open_gradcam()
    chosen = at.multiselect(key="cam_models").value
    assert len(chosen) == 2 and {c.split(" · ")[0] for c in chosen} == {
        "tiny label_smoothing=0.0", "tiny label_smoothing=0.1"}
    assert at.selectbox(key="cam_subset").value == "holdout"
    n = at.slider(key="cam_count").value
    shown = images_shown(at)
    rows = (shown - 1) // 3  # the colour scale, then per row: the image + one map per model
    assert shown == 3 * rows + 1 and 1 <= rows <= n
    text = captions(at)
    assert "predicted" in text and "%" in text and "reads layer `layer2` (4×4 map)" in text


def test_switching_method_target_and_layer_redraws(study_env):
    at = open_gradcam()
    before = images_shown(at)
    at.selectbox(key="cam_method").set_value("eigencam").run()
    assert not at.exception
    assert images_shown(at) == before
    assert "whatever the class" in captions(at)
    at.selectbox(key="cam_method").set_value("gradcam++").run()
    at.radio(key="cam_target").set_value("class").run()
    at.selectbox(key="cam_target_class").set_value("3").run()
    assert not at.exception
    assert images_shown(at) == before
    at.selectbox(key="cam_source").set_value("random_per_class").run()
    layers = at.selectbox(key="cam_layer").options  # shown as "(automatic) layer2 (4x4 map)", "layer1 (8x8 map)", ...
    assert layers[0].startswith("(automatic) layer2") and "layer1 (8x8 map)" in layers
    at.selectbox(key="cam_layer").set_value("layer1").run()
    assert not at.exception
    assert images_shown(at) == 3 * at.slider(key="cam_count").value + 1
    assert "reads layer `layer1` (8×8 map)" in captions(at)


def test_fold_against_fold_on_out_of_fold_images_warns(study_env):
    at = open_gradcam()
    run0 = [m for m in at.multiselect(key="cam_models").options if m.startswith("tiny label_smoothing=0.0")]
    at.multiselect(key="cam_models").set_value(run0).run()
    at.selectbox(key="cam_subset").set_value("oof").run()
    assert not at.exception
    assert "compare folds on the holdout" in captions(at)


def test_uploaded_image_path(study_env):
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 30), 200, np.uint8)).save(buffer, format="PNG")  # grayscale, another size
    data = buffer.getvalue()
    image = cam_loaders.decode_upload(data, "mine.png")
    assert image.shape == (40, 30, 3) and image.dtype == np.uint8
    entry = cam_loaders.model_choices(study_env.workspace).models[0]
    result = cam_loaders.explain(entry, [image], cam_loaders.images_token(upload=data), method="gradcam",
                                 targets=None, layer=None)
    assert result.cams.shape == (1, 32, 32) and 0.0 <= result.cams.min() <= result.cams.max() <= 1.0
    assert result.probabilities.shape == (1, 10)
    with pytest.raises(DatasetError, match="'notes.txt' is not an image"):
        cam_loaders.decode_upload(b"hello", "notes.txt")


def test_upload_source_without_a_file_asks_for_one(study_env):
    at = open_gradcam()
    at.selectbox(key="cam_source").set_value("upload").run()
    assert not at.exception
    assert any("Upload an image" in i.value for i in at.info)
    assert "true" not in at.radio(key="cam_target").options  # an upload has no true class


def test_empty_workspace_says_no_runs_yet(workspace, demo_spec_path, monkeypatch):
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    at = open_gradcam()
    assert any("No runs yet" in i.value for i in at.info)


@pytest.fixture
def damaged_workspace(tiny_study, tmp_path, demo_spec_path, monkeypatch):
    """Copies of the tiny runs: one failed after fold 0, one whose fold-1 weights file was deleted."""
    ws = tmp_path / "ws"
    for run_dir in tiny_study.run_dirs:
        shutil.copytree(run_dir, ws / "runs" / run_dir.name)
    failed, lost = (ws / "runs" / d.name for d in tiny_study.run_dirs)
    status = json.loads((failed / "status.json").read_text())
    status.update(state="failed", error="CUDA out of memory in fold 1")
    status["folds"]["1"]["state"] = "failed"
    (failed / "status.json").write_text(json.dumps(status))
    (lost / "weights" / "fold1.safetensors").unlink()
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    return ws


def test_failed_run_and_missing_weights_are_explained(damaged_workspace):
    choices = cam_loaders.model_choices(damaged_workspace)
    assert sorted((m.run_name, m.fold) for m in choices.models) == [
        ("tiny label_smoothing=0.0", 0), ("tiny label_smoothing=0.1", 0)]
    notes = " ".join(message for _, message in choices.notes)
    assert "failed (1 of 2 folds finished, listed below): CUDA out of memory in fold 1" in notes
    assert "fold1.safetensors" in notes and "is missing" in notes
    at = open_gradcam()
    assert any("failed" in w.value for w in at.warning)
    assert any("is missing" in e.value for e in at.error)
    assert images_shown(at) > 1  # the folds that are there still work


def test_run_still_training_lists_its_finished_folds(tiny_study, tmp_path):
    import os
    from datetime import UTC, datetime

    ws = tmp_path / "ws"
    run_dir = shutil.copytree(tiny_study.run_dirs[0], ws / "runs" / tiny_study.run_dirs[0].name)
    status = json.loads((run_dir / "status.json").read_text())
    status.update(state="running", pid=os.getpid(), updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    status["folds"]["1"]["state"] = "running"
    (run_dir / "status.json").write_text(json.dumps(status))
    choices = cam_loaders.model_choices(ws)
    assert [(m.run_name, m.fold) for m in choices.models] == [("tiny label_smoothing=0.0", 0)]
    assert choices.notes == [("info", "Run **tiny label_smoothing=0.0** is still training (1 of 2 folds finished, "
                                      "listed below); its other folds appear here when they finish.")]
