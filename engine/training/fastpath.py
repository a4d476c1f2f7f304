"""GPU fast path helpers: optional ``torch.compile`` with static shapes, and the automatic batch size.

- :func:`compile_model` compiles a model in place (``nn.Module.compile``, so its ``state_dict`` keeps
  its keys) with ``dynamic=False``: one graph per batch shape, the fastest kernels. Training never
  meets a second shape (its loader drops the last, smaller batch); prediction pads the last batch up
  to the loader's batch size (:func:`pad_batch`) instead of compiling a graph for a shape seen once.
  Padding is exact in eval mode: no layer mixes samples there (BatchNorm uses its running stats).
- :func:`find_batch_size` tries a batch size and halves it after every out-of-memory error;
  :func:`probe_batch_size` runs it on CUDA with one synthetic forward + backward pass per size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from engine.errors import ConfigError

log = logging.getLogger(__name__)

_COMPILED_MARK = "_fold_studio_static_batch"


def compile_model(model: torch.nn.Module, *, backend: str = "inductor") -> torch.nn.Module:
    """Compile ``model`` in place with static shapes; :func:`is_compiled` tells the loops to pad."""
    model.compile(dynamic=False, backend=backend)
    setattr(model, _COMPILED_MARK, True)
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    return bool(getattr(model, _COMPILED_MARK, False))


def pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` (N, ...) padded with zeros to (size, ...) when N < size; the caller keeps the first N outputs."""
    n = x.shape[0]
    if n >= size:
        return x
    out = torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))])
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def find_batch_size(try_batch: Callable[[int], None], start: int, *, on_oom: Callable[[], None] | None = None) -> int:
    """The largest of ``start, start // 2, ... 1`` for which ``try_batch(size)`` runs without running out of memory.

    Any other error propagates. :class:`ConfigError` when even a batch of one does not fit.
    """
    size = int(start)
    while size >= 1:
        try:
            try_batch(size)
            return size
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            log.info("batch size %d does not fit in device memory; trying %d", size, size // 2)
            if on_oom is not None:
                on_oom()
            size //= 2
    raise ConfigError("Not even a batch of one image fits in the device's memory; choose a smaller model or "
                      "'image_size'.")


def probe_batch_size(model: torch.nn.Module, loss_fn: torch.nn.Module, *, start: int, image_size: int,
                     num_classes: int, autocast: Callable, channels_last: bool = True) -> int:
    """:func:`find_batch_size` with one synthetic training step (forward + backward) per size.

    The model's buffers (BatchNorm statistics) and gradients are restored afterwards, so the probe
    leaves no trace in training. The optimizer's state (two tensors per weight for Adam) is not in
    the probe; it is small next to the activations of any batch worth probing.
    """
    device = next(model.parameters()).device
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()

    def try_batch(size: int) -> None:
        x = torch.randn(size, 3, image_size, image_size, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, num_classes, (size,), device=device)
        try:
            with autocast():
                loss = loss_fn(model(x), y)
            loss.backward()
        finally:
            model.zero_grad(set_to_none=True)
            del x, y

    def release() -> None:
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    try:
        return find_batch_size(try_batch, start, on_oom=release)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.train(was_training)
