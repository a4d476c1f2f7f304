"""Splits: a stratified (group-aware) holdout slice, then stratified K folds over the rest.

The same manifest and :class:`SplitConfig` always give the same split: samples are ordered by
``sample_id`` before any draw, and every draw takes ``split.seed``. Groups (a person, a patient)
never straddle the holdout boundary or two folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from engine.data.manifest import class_problems
from engine.errors import ConfigError
from engine.training.config import SplitConfig

SPLIT_COLUMNS = ["sample_id", "fold", "is_holdout"]
HOLDOUT_FOLD = -1


def group_values(manifest: pd.DataFrame, split_cfg: SplitConfig) -> np.ndarray | None:
    """The group of each sample, or None when the split is not grouped.

    ``split.group_column`` names a manifest column; when it is None the dataset's own ``group``
    column is used if the dataset defines groups.
    """
    column = split_cfg.group_column
    if column is None:
        if "group" in manifest.columns and manifest["group"].notna().any():
            column = "group"
        else:
            return None
    if column not in manifest.columns:
        allowed = [c for c in manifest.columns if c not in ("path", "label_index")]
        raise ConfigError(
            f"The 'split.group_column' parameter must name a column of the dataset's manifest among {allowed}. "
            f"Got {column!r} instead."
        )
    values = manifest[column]
    if values.isna().any():
        raise ConfigError(
            f"The group column {column!r} is empty for {int(values.isna().sum())} sample(s) "
            f"(e.g. {manifest.loc[values.isna(), 'sample_id'].iloc[0]!r}); fill it or choose another column."
        )
    return values.astype(str).to_numpy()


def _holdout_mask(labels: np.ndarray, groups: np.ndarray | None, split_cfg: SplitConfig) -> np.ndarray:
    n = len(labels)
    mask = np.zeros(n, dtype=bool)
    if split_cfg.holdout_fraction <= 0:
        return mask
    idx = np.arange(n)
    try:
        if groups is None:
            _, hold = train_test_split(idx, test_size=split_cfg.holdout_fraction, stratify=labels,
                                       random_state=split_cfg.seed)
        else:
            n_splits = max(2, round(1.0 / split_cfg.holdout_fraction))
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=split_cfg.seed)
            _, hold = next(cv.split(idx, labels, groups))
    except ValueError as e:
        raise ConfigError(
            f"The 'split.holdout_fraction' parameter ({split_cfg.holdout_fraction}) cannot make a stratified holdout "
            f"of this dataset ({n} samples, {len(np.unique(labels))} classes): {e}"
        ) from None
    mask[hold] = True
    return mask


def _fold_ids(labels: np.ndarray, groups: np.ndarray | None, split_cfg: SplitConfig) -> np.ndarray:
    folds = np.full(len(labels), HOLDOUT_FOLD, dtype=np.int64)
    if groups is None:
        cv = StratifiedKFold(n_splits=split_cfg.k, shuffle=True, random_state=split_cfg.seed)
        parts = cv.split(np.zeros(len(labels)), labels)
    else:
        cv = StratifiedGroupKFold(n_splits=split_cfg.k, shuffle=True, random_state=split_cfg.seed)
        parts = cv.split(np.zeros(len(labels)), labels, groups)
    for fold, (_, val) in enumerate(parts):
        folds[val] = fold
    return folds


def make_split(manifest: pd.DataFrame, split_cfg: SplitConfig) -> pd.DataFrame:
    """Assign every sample a fold: columns ``sample_id``, ``fold`` (-1 for the holdout), ``is_holdout``.

    Rows come back in manifest order. Raises :class:`ConfigError` naming the class when a class has
    fewer samples (or groups) than ``k`` or the holdout leaves it too few.
    """
    hold = check_split_feasible(manifest, split_cfg)
    groups = group_values(manifest, split_cfg)
    labels = manifest["label"].astype(str).to_numpy()
    folds = np.full(len(manifest), HOLDOUT_FOLD, dtype=np.int64)
    rest = np.flatnonzero(~hold)
    rest = rest[np.argsort(manifest["sample_id"].astype(str).to_numpy()[rest], kind="stable")]
    folds[rest] = _fold_ids(labels[rest], None if groups is None else groups[rest], split_cfg)
    return pd.DataFrame({"sample_id": manifest["sample_id"].astype(str).to_numpy(), "fold": folds, "is_holdout": hold})


def holdout_mask(manifest: pd.DataFrame, split_cfg: SplitConfig, groups: np.ndarray | None) -> np.ndarray:
    """Which samples (manifest order) form the holdout; drawn on the samples ordered by ``sample_id``."""
    order = np.argsort(manifest["sample_id"].astype(str).to_numpy(), kind="stable")
    labels = manifest["label"].astype(str).to_numpy()[order]
    hold_sorted = _holdout_mask(labels, None if groups is None else groups[order], split_cfg)
    hold = np.empty_like(hold_sorted)
    hold[order] = hold_sorted
    return hold


def _count_per_class(labels: pd.Series, groups: np.ndarray | None) -> pd.Series:
    """Samples per class, or distinct groups per class when grouped."""
    if groups is None:
        return labels.value_counts()
    return pd.DataFrame({"label": labels.to_numpy(), "group": groups}).groupby("label")["group"].nunique()


def check_split_feasible(manifest: pd.DataFrame, split_cfg: SplitConfig, *, classes=None) -> np.ndarray:
    """Refuse, naming the class, a dataset with fewer than two classes, a k larger than a class (or its
    groups), or a holdout that leaves too few — :func:`engine.data.manifest.class_problems`, the
    check the scan reports, before and after the holdout.

    Returns the holdout mask (manifest order) it checked.
    """
    labels = manifest["label"].astype(str).reset_index(drop=True)
    groups = group_values(manifest, split_cfg)
    unit = "sample(s)" if groups is None else "group(s)"
    counts = _count_per_class(labels, groups)
    if classes is not None:
        counts = counts.reindex([str(c) for c in classes], fill_value=0)
    _refuse(class_problems(counts, split_cfg.k, unit=unit),
            f"The 'split.k' parameter ({split_cfg.k}) cannot split this dataset into stratified folds.")
    hold = holdout_mask(manifest, split_cfg, groups)
    rest = ~hold
    left = _count_per_class(labels[rest], None if groups is None else groups[rest]).reindex(counts.index, fill_value=0)
    _refuse(class_problems(left, split_cfg.k, unit=unit, stage=" after the holdout"),
            f"The 'split.holdout_fraction' parameter ({split_cfg.holdout_fraction}) leaves too few {unit} for "
            f"k={split_cfg.k} folds; lower holdout_fraction or k.")
    return hold


def _refuse(problems: list, head: str) -> None:
    if problems:
        raise ConfigError(head + " " + " ".join(p.message for p in problems))
