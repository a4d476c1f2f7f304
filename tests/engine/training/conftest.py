"""Helpers for the training tests: a tiny config over the demo dataset."""

from __future__ import annotations

import copy

import pytest


def tiny_config_dict(spec_path, **sections) -> dict:
    """A config that trains fast on CPU: test_resnet at 32 px, 1 epoch, no workers. ``sections`` update it
    (dotted keys allowed: ``**{"train.lr": 0.1}``)."""
    data = {
        "dataset": str(spec_path), "model": {"name": "test_resnet"}, "image_size": 32, "device": "cpu",
        "split": {"k": 3, "seed": 1, "holdout_fraction": 0.1}, "tta_views": ["identity", "hflip"],
        "train": {"epochs": 1, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0, "num_workers": 0},
    }
    data = copy.deepcopy(data)
    for key, value in sections.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models at 32 px gain nothing from intra-op threads, and on a busy 2-core runner OpenMP's
    spin-waiting made two threads 40x slower than one (measured: 123 s vs 3 s for 8 steps)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_config(demo_spec_path):
    return lambda **sections: tiny_config_dict(demo_spec_path, **sections)
