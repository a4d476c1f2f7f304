"""Cached wrappers of the label-review engine calls (Review page, the Ensemble page's overrides tab, Submit's
leaderboard): keyed by small tokens (prediction-file mtimes, the overrides file's mtime), never by big objects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.data.overrides import LabelOverrides, overrides_path, read_overrides
from studio.loaders import mtime


@st.cache_data(max_entries=8, show_spinner="Finding label issues (confident learning)...")
def label_issues(run_dirs: tuple[str, ...], token: tuple[float, ...], method: str, rank_by: str, tta: str,
                 views: tuple[str, ...] | None):
    """:func:`engine.analysis.label_issues.label_issues` of the runs (their OOF + holdout predictions)."""
    from engine.analysis.label_issues import label_issues as find

    return find(list(run_dirs), method=method, rank_by=rank_by, tta=tta, views=list(views) if views else None)


def overrides_token(spec_path: str | Path) -> float:
    return mtime(overrides_path(spec_path))


@st.cache_data(max_entries=8, show_spinner=False)
def _overrides(spec_path: str, token: float) -> LabelOverrides:
    return read_overrides(spec_path)


def overrides_of(spec_path: str | Path) -> LabelOverrides:
    """The review decisions beside a dataset spec, re-read when the file changes."""
    return _overrides(str(spec_path), overrides_token(spec_path))


@st.cache_data(max_entries=16, show_spinner=False)
def duplicates(scan_token: tuple, sample_ids: tuple[str, ...], _scan_table: pd.DataFrame,
               _labels: pd.Series) -> pd.DataFrame:
    """Training images duplicating the given samples (engine.analysis.label_issues.duplicate_partners); the labels
    (the manifest's, after overrides) change with the token, whose dataset mtime covers the overrides file."""
    from engine.analysis.label_issues import duplicate_partners

    return duplicate_partners(_scan_table, list(sample_ids), _labels)


@st.cache_data(max_entries=8, show_spinner=False)
def override_pairs(run_dirs: tuple[str, ...], token: tuple[float, ...]) -> list[tuple[str, str]]:
    """``(without, with)`` run directories: the same config trained without and with label overrides."""
    from engine.analysis.common_samples import find_override_pairs

    return [(str(a.path), str(b.path)) for a, b in find_override_pairs(list(run_dirs))]


@st.cache_data(max_entries=8, show_spinner="Comparing the runs on the samples both scored...")
def common_sample_comparison(with_dir: str, without_dir: str, token: tuple[float, ...], subset: str, tta: str):
    from engine.analysis.common_samples import compare_on_common_samples

    return compare_on_common_samples(with_dir, without_dir, subset=subset, tta=tta)
