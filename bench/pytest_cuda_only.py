"""pytest plugin: keep only the tests that a machine without CUDA skips (``bench/gpu_check.sh`` runs them on a GPU).

A test is kept when one of its ``skipif`` markers (on the test, its class or its module) gives a
reason that names CUDA or a GPU - "needs a CUDA GPU", "needs a CUDA device", "... runs on CUDA
only". Every other collected test is deselected (pytest reports it as such)::

    PYTHONPATH=bench python -m pytest -p pytest_cuda_only tests/engine/...
"""

from __future__ import annotations

import re

import pytest

CUDA_REASON = re.compile(r"\b(cuda|gpu)\b", re.IGNORECASE)


def needs_cuda(item: pytest.Item) -> bool:
    """Whether ``item`` carries a skipif marker whose reason mentions CUDA or a GPU."""
    return any(CUDA_REASON.search(str(marker.kwargs.get("reason", ""))) for marker in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [item for item in items if needs_cuda(item)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not needs_cuda(item)])
        items[:] = keep
