"""Shared, seeded fixtures: the demo dataset (built once per test run) and a private workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_workspace(tmp_path_factory) -> Path:
    """A workspace shared by the whole test run (runs trained once, caches)."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def demo_spec_path(tmp_path_factory) -> Path:
    """The demo dataset written once per test run; returns its dataset.yaml. Treat it as read-only."""
    from engine.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("data") / "digits-demo")


@pytest.fixture(scope="session")
def demo_dataset(demo_spec_path):
    from engine.data import open_dataset

    return open_dataset(demo_spec_path)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh workspace for one test, also exported as $FOLD_STUDIO_WORKSPACE."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    return ws
