"""Borrow a model for explaining: one thread at a time, in eval mode, handed back exactly as it was.

Studio sessions share cached models (``st.cache_resource``), and a CAM hangs hooks on a layer and
runs backward passes: two sessions at once would read each other's activations, and a leftover mode
or ``.grad`` would change the model for everyone. :func:`model_guard` prevents both.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(model: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.RLock())


@contextmanager
def model_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Hold the model's lock (re-entrant) and put it in eval mode; afterwards restore every module's
    train/eval mode and every parameter's ``.grad`` (pytorch-grad-cam's ``zero_grad`` + ``backward``
    would otherwise replace them)."""
    with _lock_for(model):
        modes = [(m, m.training) for m in model.modules()]
        grads = [(p, p.grad) for p in model.parameters()]
        model.eval()
        try:
            yield model
        finally:
            for m, training in modes:
                m.training = training
            for p, grad in grads:
                p.grad = grad
