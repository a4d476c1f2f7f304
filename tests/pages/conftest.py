"""Fixtures of the page tests: the studio pointed at the real tiny study."""

from __future__ import annotations

import pytest


@pytest.fixture
def study_env(tiny_study, demo_spec_path, monkeypatch):
    """$FOLD_STUDIO_WORKSPACE at the tiny study's workspace and the demo dataset open; returns the study."""
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(tiny_study.workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
    return tiny_study
