"""Target layers chosen for timm CNNs, channels-last models and ViTs; the ViT reshape uses the real grid."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from engine.errors import ConfigError
from engine.explain import TargetLayer, default_target_layer, find_target_layer, list_target_layers
from engine.explain.layers import MIN_GRID


def _timm(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=3, **kw).eval()


@pytest.mark.parametrize(("name", "size", "expected"), [
    ("test_resnet", (160, 160), TargetLayer("layer4", "NCHW", (5, 5))),
    ("test_resnet", (96, 128), TargetLayer("layer3", "NCHW", (6, 8))),  # layer4 is 3x4 < MIN_GRID
    ("test_efficientnet", (160, 160), TargetLayer("bn2", "NCHW", (5, 5))),  # after conv_head, before pooling
    ("test_convnext", (160, 224), TargetLayer("stages.3", "NCHW", (5, 7))),
    ("test_mambaout", (160, 224), TargetLayer("stages.3", "NHWC", (5, 7))),  # channels-last: permuted
    ("test_nfnet", (160, 160), TargetLayer("final_act", "NCHW", (5, 5))),
])
def test_cnn_layer_is_the_deepest_map_big_enough(name, size, expected):
    assert find_target_layer(_timm(name), (3, *size)) == expected


def test_layer_list_runs_shallow_to_deep_with_real_grids():
    layers = list_target_layers(_timm("test_resnet"), (3, 64, 96))
    assert [t.name for t in layers] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert [t.grid for t in layers] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert default_target_layer(layers).name == "layer3"
    assert min(default_target_layer(layers).grid) >= MIN_GRID


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_vit_reads_norm1_of_the_last_block_on_its_real_grid(size):
    model = _timm("test_vit", img_size=size)
    layer = find_target_layer(model, (3, *size))
    grid = (size[0] // 16, size[1] // 16)
    assert layer == TargetLayer("blocks.5.norm1", "NLC", grid, prefix_tokens=1)
    assert grid != (14, 14)
    with torch.no_grad():
        tokens = torch.randn(2, 1 + grid[0] * grid[1], 64)
        assert layer.reshape_transform()(tokens).shape == (2, 64, *grid)


def test_vit_reshape_drops_every_prefix_token_and_keeps_row_major_patch_order():
    # 1 class token + 4 register tokens, a 4x6 grid: the prefix count comes from the token count.
    model = VisionTransformer(img_size=(64, 96), patch_size=16, embed_dim=16, depth=2, num_heads=2,
                              reg_tokens=4, num_classes=3).eval()
    layer = find_target_layer(model, (3, 64, 96))
    assert (layer.grid, layer.prefix_tokens) == ((4, 6), 5)
    tokens = torch.arange(5 + 24, dtype=torch.float32)[None, :, None].repeat(1, 1, 3)  # value = token index
    grid = layer.reshape_transform()(tokens)
    assert grid.shape == (1, 3, 4, 6)
    assert grid[0, 0, 0, 0] == 5 and grid[0, 0, 0, 5] == 10 and grid[0, 0, 1, 0] == 11 and grid[0, 0, 3, 5] == 28
    with pytest.raises(ConfigError, match="prefix tokens"):
        layer.reshape_transform()(torch.zeros(1, 20, 3))


def test_vit_without_class_token_has_no_prefix():
    layer = find_target_layer(_timm("test_vit_relpos", img_size=(64, 96)), (3, 64, 96))
    assert (layer.layout, layer.grid, layer.prefix_tokens) == ("NLC", (4, 6), 0)


def test_a_named_layer_is_used_and_described():
    model = _timm("test_resnet")
    assert find_target_layer(model, (3, 64, 64), "layer2") == TargetLayer("layer2", "NCHW", (8, 8))
    with pytest.raises(ConfigError, match="no module named 'layer9'"):
        find_target_layer(model, (3, 64, 64), "layer9")
    with pytest.raises(ConfigError, match="'fc' of model 'test_resnet' outputs"):
        find_target_layer(model, (3, 64, 64), "fc")


def test_model_without_a_spatial_layer_names_itself_and_suggests_a_layer():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    with pytest.raises(ConfigError, match=r"Model 'Sequential' has no layer a CAM can use.*layer='\.\.\.'"):
        find_target_layer(mlp, (3, 8, 8))


def test_dynamic_size_vit_uses_the_grid_of_the_input_not_of_its_creation_size():
    model = _timm("test_vit")  # dynamic_img_size=True, created for 160x160: patch_embed.grid_size is 10x10
    assert tuple(model.patch_embed.grid_size) == (10, 10)
    assert find_target_layer(model, (3, 64, 96)).grid == (4, 6)


def test_wrong_input_size_for_a_fixed_size_vit_is_a_clear_error():
    model = _timm("test_vit", img_size=64, dynamic_img_size=False)
    with pytest.raises(ConfigError, match=r"'test_vit' cannot run on input of size \(3, 96, 96\)"):
        find_target_layer(model, (3, 96, 96))


def test_probing_leaves_no_hook_behind():
    model = _timm("test_convnext")
    list_target_layers(model, (3, 64, 64))
    assert all(not m._forward_hooks for m in model.modules())
