"""Loading predictions from run directories into aligned arrays.

A :class:`PredictionSet` is what every analysis function takes: ``logits`` ``(members, samples,
classes)`` with one :class:`Member` key per row (``run_id``, ``fold``, ``view``), the sample ids,
the labels (-1 for test) and the one ordered class list. ``logits`` holds raw logits as the run
stored them, or log-probabilities after :meth:`PredictionSet.merge_tta` — either is a valid input
to softmax and to every voting rule.

Which subset answers which question (docs/formats.md, DESIGN.md "Why a holdout"):

- ``oof``: each training sample once per view, by the fold model that did not see it — one member
  per (run, view), ``fold`` is None and :attr:`PredictionSet.fold_of` says which fold predicted
  each sample. Cross-run comparisons use it, and only for runs that share a split.
- ``holdout``: every fold model on the same labelled slice — one member per (run, fold, view); fold
  ensembles are scored here.
- ``test``: like holdout, unlabelled; what a submission is made of.

Runs are opened through the run store (:func:`engine.runs.read_run`: one reader of a run's config,
status and files, importing no training code); :class:`RunInfo` is the store's
:class:`~engine.runs.RunRecord`. A run is refused, naming what is wrong, when it is damaged or when
a fold its status calls done lacks a prediction file — never scored on the folds that are left.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.metrics import softmax
from engine.analysis.tta import check_tta_mode, merge_views
from engine.errors import AnalysisError, RunDamagedError
from engine.runs import SUBSETS, RunRecord, read_predictions, read_run, run_dir_of

RunInfo = RunRecord  # the name analysis code and users' scripts have used for an opened run


# ------------------------------------------------------------------ runs


def open_run(run: str | Path | RunRecord, *, workspace: str | Path | None = None) -> RunRecord:
    """A run by id (under ``<workspace>/runs/``, a unique prefix is enough) or by path, checked for analysis.

    Raises :class:`~engine.errors.RunError` when there is no such run, and
    :class:`~engine.errors.RunDamagedError` when its status or config cannot be read, or when a fold
    its status calls done lacks a prediction file (each missing file is named).
    """
    record = run if isinstance(run, RunRecord) else read_run(run_dir_of(run, workspace))
    if record.damage:
        raise RunDamagedError(f"{record.damage} It cannot be analysed.")
    missing = record.missing_predictions()
    if missing:
        folds = sorted({fold for fold, _, _ in missing})
        views = ",".join(record.tta_views) or "identity"
        raise RunDamagedError(
            f"Run {record.run_id!r} is damaged: fold(s) {folds} are done but their prediction file(s) are missing: "
            + ", ".join(repr(str(path)) for _, _, path in missing)
            + f". Its other folds are not analysed alone. Predict the fold(s) again (python -m engine predict "
              f"{record.run_id} --tta {views} --folds {','.join(map(str, folds))}), or train them again "
              f"(python -m engine resume {record.run_id}).")
    return record


def open_runs(runs: Iterable[str | Path | RunRecord], *, workspace: str | Path | None = None) -> list[RunRecord]:
    infos = [open_run(r, workspace=workspace) for r in runs]
    if not infos:
        raise AnalysisError("Name at least one run to analyse.")
    ids = [i.run_id for i in infos]
    if len(set(ids)) != len(ids):
        raise AnalysisError(f"A run is named twice: {ids}.")
    return infos


def share_split(runs: Sequence[RunRecord]) -> bool:
    """True when every run has the same split (same samples in the same folds and holdout)."""
    if len(runs) < 2:
        return True
    key = None
    for run in runs:
        split = run.split().sort_values("sample_id", ignore_index=True)
        this = (tuple(split["sample_id"].astype(str)), tuple(split["fold"].astype(int)))
        if key is None:
            key = this
        elif this != key:
            return False
    return True


# ------------------------------------------------------------------ prediction sets


@dataclass(frozen=True)
class Member:
    """One row of a :class:`PredictionSet`: a run's fold model (None for OOF) under a view."""

    run_id: str
    fold: int | None
    view: str

    @property
    def label(self) -> str:
        fold = "oof" if self.fold is None else f"fold{self.fold}"
        return f"{self.run_id}/{fold}/{self.view}"


@dataclass
class PredictionSet:
    """Aligned predictions of several members on the same samples.

    Attributes:
        subset: ``oof``, ``holdout`` or ``test``.
        logits: ``(members, samples, classes)`` float — raw logits or log-probabilities.
        members: one :class:`Member` per row of ``logits``.
        sample_ids: ``(samples,)`` str.
        labels: ``(samples,)`` int64 class indices; -1 where unknown (test).
        classes: the ordered class list (``logit_i`` is ``classes[i]``).
        fold_of: ``(samples,)`` int, for ``oof`` the fold whose model predicted each sample; else None.
    """

    subset: str
    logits: np.ndarray
    members: list[Member]
    sample_ids: np.ndarray
    labels: np.ndarray
    classes: list[str]
    fold_of: np.ndarray | None = None

    @property
    def n_members(self) -> int:
        return self.logits.shape[0]

    @property
    def n_samples(self) -> int:
        return self.logits.shape[1]

    @property
    def n_classes(self) -> int:
        return self.logits.shape[2]

    @property
    def has_labels(self) -> bool:
        return self.n_samples > 0 and bool(np.all(self.labels >= 0))

    def proba(self) -> np.ndarray:
        """Probabilities ``(members, samples, classes)`` (stable softmax, float64)."""
        return softmax(self.logits)

    def member_frame(self) -> pd.DataFrame:
        """One row per member: ``member`` (label), ``run_id``, ``fold`` (None for OOF), ``view``."""
        return pd.DataFrame({"member": [m.label for m in self.members], "run_id": [m.run_id for m in self.members],
                             "fold": pd.array([m.fold for m in self.members], dtype="Int64"),
                             "view": [m.view for m in self.members]})

    def select(self, keep: Sequence[int] | Callable[[Member], bool]) -> PredictionSet:
        """A PredictionSet of some members: indices, or a predicate on :class:`Member`."""
        idx = [i for i, m in enumerate(self.members) if keep(m)] if callable(keep) else [int(i) for i in keep]
        if not idx:
            raise AnalysisError(f"No member of this {self.subset} prediction set matches the selection.")
        return dataclasses.replace(self, logits=self.logits[idx], members=[self.members[i] for i in idx])

    def views(self) -> list[str]:
        return list(dict.fromkeys(m.view for m in self.members))

    def merge_tta(self, mode: str = "mean", views: Sequence[str] | None = None) -> PredictionSet:
        """Merge the views of each (run, fold) with a TTA mode; the merged member's view is e.g. ``mean(identity+hflip)``.

        ``views`` picks the views to merge (default: all). A (run, fold) lacking one of them is refused.
        With a single view the member keeps its logits and view name.
        """
        check_tta_mode(mode)
        views = list(views) if views is not None else self.views()
        missing = [v for v in views if v not in self.views()]
        if missing or not views:
            raise AnalysisError(f"TTA views {missing or views} are not in these predictions (views: {self.views()}).")
        groups: dict[tuple[str, int | None], dict[str, int]] = {}
        for i, m in enumerate(self.members):
            if m.view in views:
                groups.setdefault((m.run_id, m.fold), {})[m.view] = i
        logits, members = [], []
        name = views[0] if len(views) == 1 else f"{mode}({'+'.join(views)})"
        for (run_id, fold), by_view in groups.items():
            absent = [v for v in views if v not in by_view]
            if absent:
                raise AnalysisError(f"Run {run_id!r} fold {fold} has no predictions for view(s) {absent}.")
            stack = self.logits[[by_view[v] for v in views]]
            logits.append(stack[0] if len(views) == 1 else merge_views(stack, mode))
            members.append(Member(run_id, fold, name))
        return dataclasses.replace(self, logits=np.stack(logits), members=members)


def _logit_columns(frame: pd.DataFrame, source: str) -> list[str]:
    cols = sorted((c for c in frame.columns if re.fullmatch(r"logit_\d+", str(c))), key=lambda c: int(c[6:]))
    if not cols or [int(c[6:]) for c in cols] != list(range(len(cols))):
        raise AnalysisError(f"{source}: expected columns logit_0 .. logit_{{C-1}}; found {list(frame.columns)}.")
    return cols


def _read_subset(run: RunRecord, subset: str, folds: Sequence[int] | None) -> pd.DataFrame:
    if subset not in SUBSETS:
        raise AnalysisError(f"The 'subset' parameter must be a str among {list(SUBSETS)}. "
                            f"Got {subset!r} instead.")
    present = run.folds(subset)
    wanted = present if folds is None else [int(f) for f in folds]
    missing = [f for f in wanted if f not in present]
    if missing:
        raise AnalysisError(f"Run {run.run_id!r} has no {subset} predictions for fold(s) {missing} "
                            f"(folds with {subset} predictions: {present or 'none'}).")
    if not wanted:
        raise AnalysisError(f"Run {run.run_id!r} has no {subset} predictions yet (no fold has finished).")
    return read_predictions(run.path, subset, folds=wanted)


def _run_arrays(run: RunRecord, subset: str, folds, views) -> PredictionSet:
    """One run's predictions of a subset as a PredictionSet (members in fold, then view order)."""
    frame = _read_subset(run, subset, folds)
    source = f"Run {run.run_id!r} {subset} predictions"
    cols = _logit_columns(frame, source)
    frame_views = list(dict.fromkeys(frame["view"].astype(str)))
    order = [v for v in run.tta_views if v in frame_views] + [v for v in frame_views if v not in run.tta_views]
    if views is not None:
        absent = [v for v in views if v not in frame_views]
        if absent:
            raise AnalysisError(f"{source} have no view(s) {absent}; views present: {order}.")
        order = list(views)
        frame = frame[frame["view"].isin(order)]
    sample_ids = pd.Index(pd.unique(frame["sample_id"].astype(str)))
    pos = sample_ids.get_indexer(frame["sample_id"].astype(str))
    view_code = pd.Index(order).get_indexer(frame["view"].astype(str))
    fold_values = frame["fold"].to_numpy().astype(np.int64)
    if subset == "oof":
        keys = [(None, v) for v in order]
        member = view_code
    else:
        fold_list = sorted(set(fold_values.tolist()))
        keys = [(f, v) for f in fold_list for v in order]
        member = np.searchsorted(fold_list, fold_values) * len(order) + view_code
    n_m, n = len(keys), len(sample_ids)
    hits = np.bincount(member * n + pos, minlength=n_m * n)
    if np.any(hits != 1):
        bad = int(np.flatnonzero(hits != 1)[0])
        fold, view = keys[bad // n]
        what = "no row" if hits[bad] == 0 else f"{hits[bad]} rows"
        raise AnalysisError(f"{source}: sample {sample_ids[bad % n]!r} has {what} for "
                            f"{'OOF' if fold is None else f'fold {fold}'} view {view!r}; every sample needs exactly one "
                            "(is a fold still running?).")
    logits = np.empty((n_m, n, len(cols)), dtype=np.float32)
    logits[member, pos] = frame[cols].to_numpy(dtype=np.float32)
    labels = np.full(n, -2, dtype=np.int64)
    label_values = frame["label_index"].to_numpy().astype(np.int64)
    labels[pos] = label_values
    if np.any(labels[pos] != label_values):
        raise AnalysisError(f"{source}: a sample has different labels in different rows.")
    fold_of = None
    if subset == "oof":
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[pos] = fold_values
    classes = run.classes or [str(i) for i in range(len(cols))]
    if len(classes) != len(cols):
        raise AnalysisError(f"{source} have {len(cols)} logit columns but the run's config lists "
                            f"{len(classes)} classes.")
    members = [Member(run.run_id, f, v) for f, v in keys]
    return PredictionSet(subset, logits, members, sample_ids.to_numpy(dtype=object), labels, classes, fold_of)


def _align(sets: list[PredictionSet], runs: list[RunRecord]) -> PredictionSet:
    first, first_run = sets[0], runs[0]
    logits, members = [first.logits], list(first.members)
    for s, run in zip(sets[1:], runs[1:], strict=True):
        if s.classes != first.classes:
            raise AnalysisError(f"Runs {first_run.run_id!r} and {run.run_id!r} have different classes "
                                f"({first.classes[:10]} vs {s.classes[:10]}); they cannot be compared.")
        pos = pd.Index(s.sample_ids).get_indexer(first.sample_ids)
        if len(s.sample_ids) != len(first.sample_ids) or np.any(pos < 0):
            only_a = sorted(set(first.sample_ids) - set(s.sample_ids))
            only_b = sorted(set(s.sample_ids) - set(first.sample_ids))
            raise AnalysisError(
                f"Runs {first_run.run_id!r} and {run.run_id!r} do not share their {first.subset} samples "
                f"({len(only_a)} only in the first, e.g. {only_a[:3]}; {len(only_b)} only in the second, e.g. "
                f"{only_b[:3]}). Compare runs of one study (they share a split), or finish their folds.")
        if np.any(s.labels[pos] != first.labels):
            raise AnalysisError(f"Runs {first_run.run_id!r} and {run.run_id!r} disagree on the labels of shared samples.")
        if first.fold_of is not None and np.any(s.fold_of[pos] != first.fold_of):
            raise AnalysisError(f"Runs {first_run.run_id!r} and {run.run_id!r} do not share a split (a sample is in "
                                "different folds), so their out-of-fold predictions are not comparable like for like.")
        logits.append(s.logits[:, pos])
        members.extend(s.members)
    return dataclasses.replace(first, logits=np.concatenate(logits, axis=0), members=members)


def load_predictions(runs: Iterable[str | Path | RunRecord] | str | Path | RunRecord, subset: str, *,
                     folds: Sequence[int] | None = None, views: Sequence[str] | None = None,
                     workspace: str | Path | None = None) -> PredictionSet:
    """Predictions of one or more runs for one subset, aligned on the first run's samples.

    ``folds`` / ``views`` select fold models and TTA views (default: all present). Raises
    :class:`AnalysisError` when runs differ in classes, samples, labels or (for ``oof``) split.
    """
    if isinstance(runs, (str, Path, RunRecord)):
        runs = [runs]
    infos = open_runs(runs, workspace=workspace)
    sets = [_run_arrays(r, subset, folds, views) for r in infos]
    return sets[0] if len(sets) == 1 else _align(sets, infos)
