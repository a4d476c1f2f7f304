"""Which layer a CAM reads, and how that layer's output becomes an (N, C, h, w) map.

A CAM weighs the feature map of one layer. For timm models it is chosen automatically:

- **CNNs** (ResNet, EfficientNet, ConvNeXt, NFNet, ...): the deepest module whose output is a
  feature map (N, C, h, w) before global pooling — the last stage, or the final conv / norm after it.
  Candidates are timm's ``feature_info`` stage modules plus that final map, found by running one
  dummy batch with forward hooks. When the deepest map is smaller than ``MIN_GRID`` on a side
  (small inputs: a 32-pixel image through a stride-32 network gives 1x1), the deepest stage that
  still has ``MIN_GRID`` cells per side is used instead, because a 1x1 or 2x2 map cannot say where.
- **Channels-last models** (Swin, MambaOut: ``model.output_fmt == "NHWC"``): the same search; the
  map (N, h, w, C) is permuted to (N, C, h, w).
- **ViT-like models** (ViT, DeiT, EVA, BEiT — anything with ``patch_embed`` and ``blocks``):
  ``norm1`` of the last block (the last block's own output only gets gradient through the class
  token). Its tokens (N, T, C) lose their prefix tokens (class / distillation / register tokens:
  ``T - h*w`` of them) and the patch tokens are laid out on the model's real patch grid for the
  input size (``patch_embed.dynamic_feat_size``) — not the 14x14 that pytorch-grad-cam's built-in
  ``vit_reshape_transform`` assumes.

Any module can be named instead (``layer="layer3"``); its layout is worked out the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from engine.errors import ConfigError
from engine.explain.guard import model_guard

MIN_GRID = 4  # a map smaller than this on a side is a last resort for the automatic choice

Layout = Literal["NCHW", "NHWC", "NLC"]


@dataclass(frozen=True)
class TargetLayer:
    """A layer a CAM can read: its dotted module name, output layout and spatial grid (h, w)."""

    name: str
    layout: Layout
    grid: tuple[int, int]
    prefix_tokens: int = 0  # NLC only: tokens before the patch tokens (class, distillation, registers)

    @property
    def label(self) -> str:
        """A short description for people: ``"layer4 (5x5 map)"``."""
        return f"{self.name} ({self.grid[0]}x{self.grid[1]} map)"

    def module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.name)

    def reshape_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The function pytorch-grad-cam applies to the layer's output (None when already NCHW)."""
        if self.layout == "NHWC":
            return _nhwc_to_nchw
        if self.layout == "NLC":
            return _TokensToMap(self.prefix_tokens, self.grid)
        return None


def _nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


class _TokensToMap:
    """(N, prefix + h*w, C) tokens -> (N, C, h, w): drop the prefix tokens, lay the patches on the grid."""

    def __init__(self, prefix_tokens: int, grid: tuple[int, int]):
        self.prefix_tokens = prefix_tokens
        self.grid = grid

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        patches = x[:, self.prefix_tokens:, :]
        if patches.shape[1] != h * w:  # a guard: a silent mis-reshape would draw a plausible but wrong map
            raise ConfigError(
                f"The layer outputs {x.shape[1]} tokens; expected {self.prefix_tokens} prefix tokens plus a "
                f"{h}x{w} patch grid ({self.prefix_tokens + h * w})."
            )
        return patches.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


def model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("architecture") or type(model).__name__


@dataclass(frozen=True)
class ModuleOutput:
    """One tensor a probe saw: the modules that returned it (innermost first) and its shape."""

    names: tuple[str, ...]
    shape: torch.Size


def probe_outputs(model: nn.Module, input_size: Sequence[int]) -> tuple[list[ModuleOutput], torch.Size]:
    """Run one zero batch of shape (1, *input_size) and record the tensor each module returns.

    Returns ``(outputs, output_shape)``: ``outputs`` in the order the tensors were last returned
    (a container after its children). Modules returning the same tensor share one entry: ``stages``
    and ``stages.3``, ``bn1`` and the in-place ``act1`` after it, an ``Identity``. Non-tensor outputs
    are left out. Runs in eval mode under :func:`~engine.explain.guard.model_guard` (a batch of one
    through train-mode BatchNorm would also update its statistics).
    """
    seen: dict[int, tuple[torch.Tensor, list[str]]] = {}  # id -> (tensor kept alive, names)

    def record(name: str, args, output) -> None:
        if not isinstance(output, torch.Tensor):
            return
        _, names = seen.pop(id(output), (output, []))
        seen[id(output)] = (output, [n for n in names if n != name] + [name])  # re-inserted: finished last

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with model_guard(model):
        handles = [m.register_forward_hook(lambda mod, a, o, n=name: record(n, a, o))
                   for name, m in model.named_modules() if name]
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, *input_size, device=device))
        except Exception as e:  # a fixed-size ViT given another size, a channel mismatch, ...
            raise ConfigError(
                f"Model {model_name(model)!r} cannot run on input of size {tuple(input_size)} "
                f"({type(e).__name__}: {e}); check the data config's 'input_size'."
            ) from e
        finally:
            for h in handles:
                h.remove()
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"Model {model_name(model)!r} returns {type(out).__name__}, not a tensor of class scores.")
    return [ModuleOutput(tuple(names), t.shape) for t, names in seen.values()], out.shape


def _fits(hw: tuple[int, int], in_hw: tuple[int, int]) -> bool:
    """True when (h, w) looks like a downsampled (H, W): within bounds, similar strides on both axes."""
    (h, w), (H, W) = hw, in_hw
    if not (1 <= h <= H and 1 <= w <= W):
        return False
    sh, sw = H / h, W / w
    return max(sh, sw) <= 1.5 * min(sh, sw)


def _layout_4d(shape: torch.Size, in_hw: tuple[int, int], prefer_nhwc: bool) -> Layout | None:
    nchw, nhwc = _fits((shape[2], shape[3]), in_hw), _fits((shape[1], shape[2]), in_hw)
    if nchw and nhwc:  # ambiguous (e.g. C == h == w): trust the model's declared format
        return "NHWC" if prefer_nhwc else "NCHW"
    return "NCHW" if nchw else "NHWC" if nhwc else None


def _describe(model: nn.Module, name: str, shape: torch.Size, in_hw: tuple[int, int]) -> TargetLayer | None:
    """The TargetLayer for a module output of ``shape``, or None when it is not a spatial map."""
    if len(shape) == 4:
        layout = _layout_4d(shape, in_hw, getattr(model, "output_fmt", None) == "NHWC")
        if layout is None:
            return None
        grid = (int(shape[2]), int(shape[3])) if layout == "NCHW" else (int(shape[1]), int(shape[2]))
        return TargetLayer(name, layout, grid)
    if len(shape) == 3:
        grid = _token_grid(model, in_hw, int(shape[1]))
        if grid is None:
            return None
        return TargetLayer(name, "NLC", grid, prefix_tokens=int(shape[1]) - grid[0] * grid[1])
    return None


def _token_grid(model: nn.Module, in_hw: tuple[int, int], tokens: int) -> tuple[int, int] | None:
    """The patch grid for ``tokens`` tokens: from ``patch_embed`` when the model has one, else a square."""
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and hasattr(patch_embed, "dynamic_feat_size"):
        gh, gw = (int(v) for v in patch_embed.dynamic_feat_size(tuple(in_hw)))
    elif patch_embed is not None and getattr(patch_embed, "grid_size", None) is not None:
        gh, gw = (int(v) for v in patch_embed.grid_size)
    else:
        prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        side = math.isqrt(max(tokens - prefix, 0))
        gh = gw = side
    prefix = tokens - gh * gw
    if gh < 1 or gw < 1 or not 0 <= prefix <= 16:  # 16: more than any class + distillation + register set
        return None
    return gh, gw


def _vit_blocks(model: nn.Module) -> str | None:
    """Name of ``blocks.<last>.norm1`` (or ``blocks.<last>``) for ViT-like models, else None."""
    blocks = getattr(model, "blocks", None)
    if getattr(model, "patch_embed", None) is None or not isinstance(blocks, nn.Sequential | nn.ModuleList):
        return None
    if len(blocks) == 0:
        return None
    last = f"blocks.{len(blocks) - 1}"
    return f"{last}.norm1" if isinstance(getattr(blocks[-1], "norm1", None), nn.Module) else last


def _no_layer_error(model: nn.Module, input_size: Sequence[int], detail: str) -> ConfigError:
    return ConfigError(
        f"Model {model_name(model)!r} has no layer a CAM can use at input size {tuple(input_size)} ({detail}). "
        "Pass a layer name (layer='...'; one of the model's named_modules() whose output is a (N, C, H, W) "
        "feature map or (N, tokens, C) patch tokens)."
    )


def _display_name(model: nn.Module, names: Sequence[str], stage_names: Sequence[str]) -> str:
    """One name for a tensor several modules return: timm's stage name when it is one, else the outermost
    module — or its child when the outermost is a Sequential passing that child's output on (``stages.3``,
    not ``stages``)."""
    stage = next((n for n in names if n in stage_names), None)
    if stage is not None:
        return stage
    names = [n for n in names if not isinstance(model.get_submodule(n), nn.Identity)] or names
    outer = names[-1]
    if len(names) > 1 and isinstance(model.get_submodule(outer), nn.Sequential) and \
            names[-2].rpartition(".")[0] == outer:
        return names[-2]
    return outer


def list_target_layers(model: nn.Module, input_size: Sequence[int]) -> list[TargetLayer]:
    """Layers worth offering for a CAM, shallow to deep (:func:`default_target_layer` picks among them).

    CNNs: timm's ``feature_info`` stages (every spatial map when the model has none) plus the deepest
    map. ViTs: ``norm1`` of each block. ``input_size`` is (C, H, W).
    """
    outputs, _ = probe_outputs(model, input_size)
    in_hw = (int(input_size[1]), int(input_size[2]))
    vit_last = _vit_blocks(model)
    if vit_last is not None:
        suffix = ".norm1" if vit_last.endswith(".norm1") else ""
        wanted = [f"blocks.{i}{suffix}" for i in range(len(model.blocks))]
        shapes = {n: o.shape for o in outputs for n in o.names}
        layers = [t for n in wanted if n in shapes and (t := _describe(model, n, shapes[n], in_hw)) is not None]
        if not layers:
            raise _no_layer_error(model, input_size, "its blocks do not output patch tokens on a grid")
        return layers
    stage_names = [f["module"] for f in getattr(model, "feature_info", None) or [] if isinstance(f, dict)]
    maps = []
    for o in outputs:
        name = _display_name(model, o.names, stage_names)
        t = _describe(model, name, o.shape, in_hw) if len(o.shape) == 4 else None
        if t is not None and t.grid[0] * t.grid[1] > 1:
            maps.append((name in stage_names, t))
    if not maps:
        raise _no_layer_error(model, input_size, "no module outputs a spatial feature map larger than 1x1")
    if not stage_names:
        return [t for _, t in maps]
    return [t for is_stage, t in maps[:-1] if is_stage] + [maps[-1][1]]


def default_target_layer(layers: Sequence[TargetLayer]) -> TargetLayer:
    """The automatic choice among ``layers`` (shallow to deep): the deepest with a map of at least
    ``MIN_GRID`` cells per side, else the deepest."""
    deep_enough = [t for t in layers if min(t.grid) >= MIN_GRID]
    return deep_enough[-1] if deep_enough else layers[-1]


def find_target_layer(model: nn.Module, input_size: Sequence[int], layer: str | None = None) -> TargetLayer:
    """The layer a CAM reads: ``layer`` by name when given, else the automatic choice (module doc).

    ``input_size`` is (C, H, W). Raises :class:`ConfigError` naming the model when nothing fits.
    """
    if layer is None:
        return default_target_layer(list_target_layers(model, input_size))
    names = {n for n, _ in model.named_modules() if n}
    if layer not in names:
        raise ConfigError(f"Model {model_name(model)!r} has no module named {layer!r}; pass one of its "
                          f"named_modules(), e.g. {sorted(names)[-3:]}.")
    shapes = {n: o.shape for o in probe_outputs(model, input_size)[0] for n in o.names}
    in_hw = (int(input_size[1]), int(input_size[2]))
    found = _describe(model, layer, shapes[layer], in_hw) if layer in shapes else None
    if found is None:
        shape = tuple(shapes[layer]) if layer in shapes else "no tensor"
        raise ConfigError(f"Layer {layer!r} of model {model_name(model)!r} outputs {shape}, not a feature map "
                          "(N, C, H, W) / (N, H, W, C) or patch tokens (N, T, C); pick another layer.")
    return found
