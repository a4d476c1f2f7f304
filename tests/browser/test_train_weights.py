"""The Train page in Chromium with timm weights in a Hugging Face cache: the weights' status, the input the
model wants, the image-size default, and a run whose metrics are not there yet (dashes, not None).
Screenshot: train-weights.png."""

from __future__ import annotations

import pytest
from conftest import _require_browser, serve_studio
from test_pages import assert_no_exception, screenshot, wait_for_run

pytestmark = pytest.mark.browser


def test_train_page_shows_cached_weights_and_defaults(tmp_path, demo_spec_path, hub_cache, page, screenshot_dir,
                                                      monkeypatch):
    from engine.offline import USER_VALUE_VAR
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    _require_browser()
    hub_cache.add("test_efficientnet")  # the form's default model
    monkeypatch.setenv(USER_VALUE_VAR, "")  # a user without HF_HUB_OFFLINE: the "Allow downloads" switch is live
    workspace = tmp_path / "workspace"
    create_runs(load_run_configs({"dataset": str(demo_spec_path), "model": {"name": "test_resnet"},
                                  "image_size": 32, "split": {"k": 2}}), workspace=workspace)  # never trained
    with serve_studio(tmp_path, workspace, str(demo_spec_path)) as url:
        page.goto(f"{url}/train")
        wait_for_run(page)
        assert_no_exception(page, "Train page with cached weights")
        status = page.get_by_text("Weights: cached.")
        assert status.count() == 1
        text = page.locator('[data-testid="stAlert"]').filter(has_text="Weights: cached.").inner_text()
        assert "timm/test_efficientnet.r160_in1k" in text and "160x160 px" in text and "mean (0.485" in text
        assert page.get_by_role("spinbutton", name="Image size").input_value() == "160"  # pretrained input size
        assert page.get_by_text("Image size default 160: the input size of test_efficientnet's pretrained").count()
        screenshot(page, screenshot_dir / "train-weights.png")
