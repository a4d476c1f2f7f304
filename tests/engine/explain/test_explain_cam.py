"""compute_cams: shapes and ranges for every method, maps that find the evidence, the model left untouched."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import timm
import torch
from torch import nn

from engine.errors import ConfigError
from engine.explain import compute_cams, get_cam_method, list_cam_methods, overlay

METHODS = list_cam_methods()
MEAN_STD = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _timm(name: str, size: tuple[int, int], **kw) -> nn.Module:
    torch.manual_seed(0)
    extra = {"img_size": size} if "vit" in name else {}
    return timm.create_model(name, pretrained=False, num_classes=4, **extra, **kw).eval()


def _images(n: int, h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_the_methods_the_studio_promises_are_offered():
    assert {"gradcam", "gradcam++", "eigencam", "scorecam", "layercam"} <= set(METHODS)
    assert get_cam_method("eigencam").uses_target is False and get_cam_method("gradcam").uses_target is True


def test_unknown_method_lists_the_allowed_ones():
    allowed = r"'method' parameter must be a str among \['gradcam', .*'layercam'.*Got 'gradcma'"
    with pytest.raises(ConfigError, match=allowed):
        compute_cams(nn.Conv2d(3, 3, 1), _images(1), data_config={"input_size": (3, 8, 8), **MEAN_STD},
                     method="gradcma")


@pytest.mark.parametrize("size", [(64, 64), (64, 96)], ids=["64x64", "64x96"])
@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_maps_in_unit_range_at_input_size(method, name, size):
    model = _timm(name, size)
    n = 1 if method == "scorecam" else 2  # Score-CAM runs the model once per feature channel
    result = compute_cams(model, _images(n), data_config={"input_size": (3, *size), **MEAN_STD}, method=method)
    assert result.cams.shape == (n, *size) and result.cams.dtype == np.float32
    assert result.cams.min() >= 0.0 and result.cams.max() <= 1.0
    assert np.isclose(result.cams.reshape(n, -1).max(axis=1), 1.0, atol=1e-3).all()  # each map is scaled to [0, 1]
    assert result.probabilities.shape == (n, 4) and np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (result.predicted == result.probabilities.argmax(axis=1)).all()
    assert (result.targets == result.predicted).all()
    assert result.method == method


@pytest.mark.parametrize("name", ["test_efficientnet", "test_convnext", "test_mambaout", "test_vit_relpos"])
def test_other_timm_families(name):
    size = (64, 96)
    result = compute_cams(_timm(name, size), _images(2), data_config={"input_size": (3, *size), **MEAN_STD},
                          method="gradcam")
    assert result.cams.shape == (2, *size) and 0.0 <= result.cams.min() <= result.cams.max() <= 1.0
    assert result.cams.std() > 0  # not a blank map


class _BrightSquareNet(nn.Module):
    """A hand-set CNN: one feature channel fires on bright pixels; class 1 = "bright", class 0 = "dark"."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features[0].weight.zero_()
            self.features[0].weight[0] = 1.0 / 27  # mean of the 3x3x3 neighbourhood
            self.features[0].bias.copy_(torch.tensor([-0.5, 0.1]))  # channel 0: brightness above 0.5; 1: constant
            self.fc.weight.copy_(torch.tensor([[-4.0, 1.0], [4.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("method", [m for m in METHODS if not m.startswith("eigen")])  # eigen*: sign of an SVD
def test_the_map_of_a_class_peaks_where_its_evidence_is(method, side):
    image = np.zeros((32, 32, 3), np.uint8)
    cols = slice(4, 12) if side == "left" else slice(20, 28)
    image[10:18, cols] = 255
    model = _BrightSquareNet().eval()
    result = compute_cams(model, [image], data_config={"input_size": (3, 32, 32), "mean": (0, 0, 0), "std": (1, 1, 1)},
                          method=method, targets=[1])
    assert result.layer.name == "features.1"
    assert result.predicted[0] == 1
    row, col = np.unravel_index(result.cams[0].argmax(), (32, 32))
    assert 8 <= row <= 19
    assert (col < 16) if side == "left" else (col >= 16)
    inside, outside = result.cams[0][10:18, cols].mean(), np.delete(result.cams[0], np.s_[cols], axis=1).mean()
    assert inside > 2 * outside


def test_explicit_targets_are_used_and_checked():
    model, cfg = _timm("test_resnet", (64, 64)), {"input_size": (3, 64, 64), **MEAN_STD}
    one = compute_cams(model, _images(2), data_config=cfg, targets=[3, 0])
    assert one.targets.tolist() == [3, 0]
    assert compute_cams(model, _images(2), data_config=cfg, targets=2).targets.tolist() == [2, 2]
    with pytest.raises(ConfigError, match=r"Target class 4 is out of range: the model has 4 classes \(0\.\.3\)"):
        compute_cams(model, _images(2), data_config=cfg, targets=[1, 4])
    with pytest.raises(ConfigError, match="one per image"):
        compute_cams(model, _images(2), data_config=cfg, targets=[1, 2, 3])


def test_bad_images_and_data_config_are_named():
    model = _timm("test_resnet", (64, 64))
    with pytest.raises(ConfigError, match=r"Image 1 must be an RGB uint8 array"):
        compute_cams(model, [_images(1)[0], np.zeros((8, 8), np.uint8)],
                     data_config={"input_size": (3, 64, 64), **MEAN_STD})
    with pytest.raises(ConfigError, match="'data_config' parameter must hold 'input_size'"):
        compute_cams(model, _images(1), data_config={"mean": (0, 0, 0)})


def test_model_is_left_as_it_was():
    model = _timm("test_convnext", (64, 64))
    model.train()
    model.stages[0].eval()  # a mixed state must come back mixed
    model.head.fc.weight.grad = torch.ones_like(model.head.fc.weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compute_cams(model, _images(2), data_config={"input_size": (3, 64, 64), **MEAN_STD}, method="gradcam++")
    target = model.get_submodule(result.layer.name)
    assert not target._forward_hooks and all(not m._forward_hooks for m in model.modules())
    assert model.training and not model.stages[0].training and model.stages[1].training
    assert torch.equal(model.head.fc.weight.grad, torch.ones_like(model.head.fc.weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "head.fc.weight")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert all(p.requires_grad for p in model.parameters())


def test_batches_give_the_same_maps_as_one_pass():
    model, cfg = _timm("test_resnet", (64, 64)), {"input_size": (3, 64, 64), **MEAN_STD}
    images = _images(5)
    whole = compute_cams(model, images, data_config=cfg, batch_size=16)
    parts = compute_cams(model, images, data_config=cfg, batch_size=2)
    np.testing.assert_allclose(whole.cams, parts.cams, atol=1e-5)
    np.testing.assert_allclose(whole.probabilities, parts.probabilities, atol=1e-6)


def test_fp32_under_autocast_and_for_a_half_precision_model():
    model, cfg = _timm("test_resnet", (64, 64)), {"input_size": (3, 64, 64), **MEAN_STD}
    images = _images(2)
    reference = compute_cams(model, images, data_config=cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = compute_cams(model, images, data_config=cfg)
    np.testing.assert_allclose(under_autocast.cams, reference.cams, atol=1e-5)
    half = model.to(torch.bfloat16)
    result = compute_cams(half, images, data_config=cfg)
    assert result.cams.dtype == np.float32 and result.probabilities.dtype == np.float32
    assert next(half.parameters()).dtype == torch.bfloat16  # explained on a copy, the model stays as given


def test_two_threads_on_one_model_do_not_mix_their_maps():
    model, cfg = _timm("test_resnet", (64, 64)), {"input_size": (3, 64, 64), **MEAN_STD}
    a, b = _images(3, seed=1), _images(3, seed=2)
    expected = {"a": compute_cams(model, a, data_config=cfg).cams, "b": compute_cams(model, b, data_config=cfg).cams}
    got: dict[str, np.ndarray] = {}

    def work(key, images):
        for _ in range(3):
            got[key] = compute_cams(model, images, data_config=cfg).cams

    threads = [threading.Thread(target=work, args=("a", a)), threading.Thread(target=work, args=("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(got["a"], expected["a"], atol=1e-5)
    np.testing.assert_allclose(got["b"], expected["b"], atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_when_the_model_is_there():
    cpu_model, cfg = _timm("test_resnet", (64, 64)), {"input_size": (3, 64, 64), **MEAN_STD}
    images = _images(3)
    on_cpu = compute_cams(cpu_model, images, data_config=cfg)
    gpu_model = _timm("test_resnet", (64, 64)).cuda()
    on_gpu = compute_cams(gpu_model, images, data_config=cfg)
    assert next(gpu_model.parameters()).is_cuda
    np.testing.assert_allclose(on_gpu.cams, on_cpu.cams, atol=1e-3)
    np.testing.assert_allclose(on_gpu.probabilities, on_cpu.probabilities, atol=1e-4)


def test_overlay_blends_a_jet_map_at_the_image_size():
    image = np.full((20, 30, 3), 128, np.uint8)
    cam = np.zeros((5, 5), np.float32)
    cam[:, 3:] = 1.0  # hot on the right
    out = overlay(image, cam, alpha=0.6)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out[10, 28, 0] > out[10, 28, 2]  # red where the map is high
    assert out[10, 1, 2] > out[10, 1, 0]  # blue where it is low
    np.testing.assert_array_equal(overlay(image, cam, alpha=0.0), image)
    with pytest.raises(ConfigError, match="alpha"):
        overlay(image, cam, alpha=1.5)


def test_images_are_prepared_exactly_as_for_prediction():
    from engine.explain.cam import preprocess
    from engine.training.data import DeviceInput, fit_size

    cfg = {"input_size": (3, 32, 32), **MEAN_STD}
    images = [_images(1, 40, 40)[0], _images(1, 20, 20, seed=1)[0]]  # one shrunk, one enlarged
    expected = torch.stack([torch.from_numpy(fit_size(img, 32).transpose(2, 0, 1).copy()) for img in images])
    on_device = DeviceInput(cfg, torch.device("cpu"), channels_last=False)
    torch.testing.assert_close(preprocess(images, cfg), on_device(expected))
