"""Models: timm names, pretrained weights from a local file, bad weights files named, data config."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from safetensors.torch import save_file

from engine.errors import ConfigError
from engine.training.config import ModelConfig
from engine.training.models import check_model_config, create_model, model_data_config, resolve_data_config


def test_create_model_sets_classes_and_drop_rates():
    model = create_model(ModelConfig(name="test_resnet", drop_rate=0.2), num_classes=7)
    assert model.num_classes == 7 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConfigError, match=r"'resnet1B'.*Close names: \[.*'resnet18'"):
        create_model(ModelConfig(name="resnet1B"), num_classes=3)


def test_hub_names_are_refused():
    with pytest.raises(ConfigError, match="model.pretrained: hub"):
        check_model_config(ModelConfig(name="hf-hub:timm/resnet18.a1_in1k"), num_classes=3)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_weights_come_from_a_local_file(tmp_path, suffix):
    torch.manual_seed(0)
    source = timm.create_model("test_resnet", num_classes=5)
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save(source.state_dict(), path)
    cfg = ModelConfig(name="test_resnet", pretrained=str(path))
    check_model_config(cfg, num_classes=3)
    model = create_model(cfg, num_classes=3)  # another head size: backbone loaded, head new
    loaded, original = model.state_dict(), source.state_dict()
    backbone = [k for k in original if not k.startswith("fc.")]
    assert all(torch.equal(loaded[k], original[k]) for k in backbone)
    assert loaded["fc.weight"].shape == (3, original["fc.weight"].shape[1])


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = timm.create_model("test_efficientnet", num_classes=3)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    cfg = ModelConfig(name="test_resnet", pretrained=str(path))
    with pytest.raises(ConfigError, match=r"does not fit model 'test_resnet'.*missing key"):
        check_model_config(cfg, num_classes=3)


class _NotATensor:
    pass


def _write_bad(path, kind: str) -> None:
    if kind == "text":
        path.write_text("not weights")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "object":
        torch.save({"a": _NotATensor()}, path)


@pytest.mark.parametrize("name, kind, message", [
    ("notes.safetensors", "text", "is not a valid safetensors file"),
    ("empty.pth", "empty", "is empty"),
    ("tensor.pth", "tensor", "holds no mapping of parameter names to tensors"),
    ("object.pth", "object", r"torch.load\(weights_only=True\).*_NotATensor"),
])
def test_a_file_that_is_not_weights_is_refused_saying_why(tmp_path, name, kind, message):
    path = tmp_path / name
    _write_bad(path, kind)
    with pytest.raises(ConfigError, match=rf"The weights file '{re.escape(str(path))}'.*{message}"):
        check_model_config(ModelConfig(name="test_resnet", pretrained=str(path)), num_classes=3)


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_convnext", "test_vit", "resnet18",
                                  "vit_small_patch16_224", "efficientnet_b0.ra_in1k"])
def test_model_data_config_is_timms_without_building_the_model(name, monkeypatch):
    built = resolve_data_config(timm.create_model(name, num_classes=3), 64)
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("model_data_config built a model"))
    assert model_data_config(name, 64) == built
    assert model_data_config(ModelConfig(name=name))["input_size"] == timm.models.get_pretrained_cfg(name).input_size


def test_data_config_from_timm_with_size_override():
    model = create_model(ModelConfig(name="test_resnet"), num_classes=3)
    default = resolve_data_config(model)
    assert default["input_size"] == (3, 160, 160) and len(default["mean"]) == 3 and len(default["std"]) == 3
    assert resolve_data_config(model, 48)["input_size"] == (3, 48, 48)
