"""Grad-CAM explains the very input prediction gave the fold model: same shrink, same resize, same normalization."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from engine.data.images import load_rgb
from engine.data.spec import DatasetSpec, TrainSpec, write_spec
from engine.explain import compute_cams
from engine.runs import store
from engine.training.config import load_run_configs, read_run_config
from engine.training.context import build_context
from engine.training.create import create_runs
from engine.training.data import make_loader, run_prediction_input
from engine.training.models import create_model, load_fold_model

# Not timm's ImageNet mean / std: a CAM normalising with the model's data config would see other input.
OWN_NORMALIZE = A.Compose([A.HorizontalFlip(p=0.5), A.Normalize(mean=(0.2, 0.3, 0.4), std=(0.1, 0.2, 0.3))])


def smooth_photos(root):
    """Two classes of 60x44 smooth RGB images: larger than the run's stored size, not square."""
    for c, name in enumerate(["a", "b"]):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(4):
            coarse = np.random.default_rng(10 * c + i).integers(0, 256, (3, 4, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((60, 44), Image.Resampling.BICUBIC).save(folder / f"{name}{i}.png")
    return write_spec(DatasetSpec(name="photos", layout="folder", train=TrainSpec(images="train")),
                      root / "dataset.yaml")


@pytest.fixture(scope="module")
def photos_spec(tmp_path_factory):
    return smooth_photos(tmp_path_factory.mktemp("photos"))


@pytest.mark.parametrize("augment", [None, A.to_dict(OWN_NORMALIZE)], ids=["model-normalizes", "pipeline-normalizes"])
def test_cam_model_input_equals_the_prediction_input(tmp_path, photos_spec, augment):
    cfg = {"dataset": str(photos_spec), "model": {"name": "test_resnet"}, "image_size": 16, "device": "cpu",
           "split": {"k": 2, "seed": 0, "holdout_fraction": 0.0}, "tta_views": ["identity"], "augment": augment,
           "train": {"epochs": 1, "batch_size": 4, "num_workers": 0}}
    (run_dir,) = create_runs(load_run_configs(cfg), workspace=tmp_path)
    torch.manual_seed(0)
    run_cfg = read_run_config(run_dir)
    store.write_weights(run_dir, 0, create_model(run_cfg.model, len(run_cfg.classes)).state_dict())

    # what prediction feeds the fold model: the run's loader, then RunContext.to_input
    ctx = build_context(run_dir, "cpu")
    table = ctx.samples.iloc[:4]
    loader = make_loader(ctx.images(table, train=False), batch_size=4, shuffle=False, num_workers=0,
                         device=ctx.device)
    predicted_input = ctx.to_input()(next(iter(loader))[0])

    # what the Grad-CAM page feeds it: the fold model, the images decoded in full, the run's prediction input
    model, info = load_fold_model(run_dir, 0)
    seen: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    try:
        compute_cams(model, [load_rgb(p) for p in table["path"]], method="gradcam",
                     data_config=run_prediction_input(info["config"], info["data_config"]))
    finally:
        hook.remove()
    cam_input = seen[-1]  # the layer probe runs first on a dummy batch

    assert cam_input.shape == predicted_input.shape == (4, 3, 16, 16)
    torch.testing.assert_close(cam_input, predicted_input, rtol=0, atol=1e-6)
    if augment is not None:  # the run's own Normalize, not timm's: a white pixel maps to (1 - mean) / std
        white = run_prediction_input(info["config"], info["data_config"]).batch([np.full((16, 16, 3), 255, np.uint8)])
        np.testing.assert_allclose(white[0, :, 0, 0].numpy(), [(1 - 0.2) / 0.1, (1 - 0.3) / 0.2, (1 - 0.4) / 0.3],
                                   rtol=1e-5)
