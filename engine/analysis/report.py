"""One call for everything the analysis shows about a set of runs (``python -m engine analyze``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.analysis.compare import (
    FoldComparison,
    LabelSmoothingComparison,
    TTAComparison,
    VotingComparison,
    compare_folds,
    compare_label_smoothing,
    compare_tta,
    compare_voting,
    find_label_smoothing_groups,
)
from engine.analysis.ensemble import EnsembleSearch, search_ensembles
from engine.analysis.load import RunInfo, load_predictions, open_runs, share_split
from engine.analysis.tta import check_tta_mode
from engine.errors import AnalysisError


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars / arrays as Python values, tuples as lists and NaN / inf as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA:
        return None
    return obj


@dataclass
class AnalysisReport:
    """Everything :func:`analyze_runs` computed; ``None`` where the runs do not allow it (see ``notes``).

    Attributes:
        runs: one summary dict per run (``run_id``, ``name``, ``model``, ``label_smoothing``, ``k``, ``views``).
        folds: :class:`FoldComparison` per run id.
        voting_holdout: soft vs hard over every fold model (of every run) on the holdout.
        voting_oof: soft vs hard across runs on OOF (two or more runs sharing a split).
        tta: TTA gains on OOF (runs soft-voted).
        label_smoothing: one :class:`LabelSmoothingComparison` per group of runs differing only in it.
        ensembles: ranked combinations of runs x folds x views (holdout, else OOF).
        notes: what was skipped and why.
    """

    runs: list[dict]
    tta_mode: str
    folds: dict[str, FoldComparison] = field(default_factory=dict)
    voting_holdout: VotingComparison | None = None
    voting_oof: VotingComparison | None = None
    tta: TTAComparison | None = None
    label_smoothing: list[LabelSmoothingComparison] = field(default_factory=list)
    ensembles: EnsembleSearch | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: ``voting.holdout.soft.accuracy``, ``tta.gain_per_view.<view>.accuracy_gain``, ..."""
        return jsonable({
            "runs": self.runs, "tta_mode": self.tta_mode, "notes": self.notes,
            "voting": {"holdout": self.voting_holdout.to_dict() if self.voting_holdout else None,
                       "oof": self.voting_oof.to_dict() if self.voting_oof else None},
            "tta": self.tta.to_dict() if self.tta else None,
            "folds": {k: v.to_dict() for k, v in self.folds.items()},
            "label_smoothing": [ls.to_dict() for ls in self.label_smoothing],
            "ensembles": self.ensembles.to_dict() if self.ensembles else None,
        })

    def to_text(self) -> str:
        """The report for a terminal: one titled table per comparison."""
        out: list[str] = []
        prefix = f"{self.runs[0]['run_id']}/" if len(self.runs) == 1 else None

        def short(label: str) -> str:  # one run: its members are told apart by fold and view alone
            return label.removeprefix(prefix) if prefix else label

        def section(title: str, frame: pd.DataFrame | None, columns: Sequence[str] | None = None) -> None:
            if frame is None or frame.empty:
                return
            shown = frame[[c for c in columns if c in frame.columns]] if columns else frame
            text = shown.astype(object).where(shown.notna(), "-").to_string(
                index=False, formatters={c: (lambda v: v if isinstance(v, str) else f"{v:.4f}")
                                         for c in shown.columns if shown[c].dtype.kind == "f"})
            out.append(f"\n== {title}\n" + text)

        section("Runs", pd.DataFrame(self.runs).drop(columns=["path"], errors="ignore"))
        main = ["accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece"]
        for run_id, fc in self.folds.items():
            section(f"Folds of {run_id}: each fold model on its own validation fold (OOF)", fc.oof, ["fold", "n", *main])
            section(f"Folds of {run_id}: each fold model on the holdout", fc.holdout, ["fold", "n", *main])
            for subset, agreement in fc.agreement.items():
                section(f"Folds of {run_id}: agreement of predicted classes on {subset} "
                        f"({len(fc.disagreements[subset])} samples disagree)", agreement.reset_index(names=""))
        diff_cols = ["metric", "a", "b", "diff", "diff_low", "diff_high", "excludes_zero"]
        for title, vc in (("holdout, all fold models", self.voting_holdout), ("OOF, across runs", self.voting_oof)):
            if vc is not None:
                section(f"Soft vs hard voting ({title}; {len(vc.members)} members)", vc.metrics, ["voting", *main])
                section(f"Soft minus hard, 95% paired-bootstrap interval ({len(vc.disagreements)} samples disagree)",
                        vc.differences, diff_cols)
        if self.tta is not None:
            section(f"TTA gain over {self.tta.baseline_view} alone ({self.tta.subset}; interval 95%)", self.tta.gains,
                    ["views", "mode", "accuracy", "accuracy_gain", "accuracy_gain_low", "accuracy_gain_high",
                     "macro_f1", "macro_f1_gain", "log_loss"])
        for ls in self.label_smoothing:
            section("Label smoothing (temperature fitted on OOF)", ls.metrics,
                    ["run_id", "label_smoothing", "subset", "calibration", *main])
            section("Label smoothing vs the lowest value (OOF, 95% interval)", ls.differences,
                    ["run_id", "label_smoothing", *diff_cols])
        if self.ensembles is not None:
            e = self.ensembles
            ranking = e.ranking.head(10).assign(members=lambda f: f["members"].map(lambda m: " + ".join(map(short, m))))
            section(f"Best ensembles ({e.method} search on {e.subset}, by {e.metric}; gain vs best single "
                    f"{short(e.best_single['member'])})", ranking,
                    ["rank", "voting", "n_members", "accuracy", "macro_f1", "gain", "gain_low", "gain_high", "members"])
        if self.notes:
            out.append("\n== Notes\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n".join(out).lstrip("\n") + "\n"


def analyze_runs(runs: Sequence[str | Path | RunInfo], *, views: Sequence[str] | None = None, tta: str = "mean",
                 metric: str = "accuracy", n_resamples: int = 1000, seed: int = 0, search: bool = True,
                 workspace: str | Path | None = None) -> AnalysisReport:
    """Run every comparison the runs allow; a comparison they do not allow is skipped with a note."""
    check_tta_mode(tta)
    infos = open_runs(runs, workspace=workspace)
    report = AnalysisReport(runs=[r.summary() for r in infos], tta_mode=tta)
    boot = {"n_resamples": n_resamples, "seed": seed}

    def attempt(what: str, fn):
        try:
            return fn()
        except AnalysisError as e:
            report.notes.append(f"{what}: {e}")
            return None

    for run in infos:
        if run.folds("oof") or run.folds("holdout"):
            fc = attempt(f"folds of {run.run_id}", lambda run=run: compare_folds(run, views=views, tta=tta))
            if fc is not None:
                report.folds[run.run_id] = fc
    with_holdout = [r for r in infos if r.folds("holdout")]
    if with_holdout:
        report.voting_holdout = attempt("hard vs soft voting on the holdout", lambda: compare_voting(
            load_predictions(with_holdout, "holdout", views=views).merge_tta(tta, views), **boot))
    else:
        report.notes.append("No run has holdout predictions: voting across folds is not measured "
                            "(train with split.holdout_fraction > 0).")
    with_oof = [r for r in infos if r.folds("oof")]
    shared = len(with_oof) == len(infos) and share_split(infos)
    if len(infos) > 1 and shared:
        report.voting_oof = attempt("hard vs soft voting across runs (OOF)", lambda: compare_voting(
            load_predictions(infos, "oof", views=views).merge_tta(tta, views), **boot))
    elif len(infos) > 1:
        report.notes.append("The runs do not share a split (or lack OOF predictions): no cross-run comparison on OOF.")
    tta_runs = infos if shared else with_oof[:1]
    if tta_runs:
        report.tta = attempt("TTA gains", lambda: compare_tta(tta_runs, subset="oof", **boot))
    for group in find_label_smoothing_groups(infos if shared else []):
        ls = attempt("label smoothing", lambda group=group: compare_label_smoothing(group, views=views, tta=tta, **boot))
        if ls is not None:
            report.label_smoothing.append(ls)
    if search:
        pool, subset = (with_holdout, "holdout") if with_holdout else ((infos, "oof") if shared else (with_oof[:1], "oof"))
        if pool:
            report.ensembles = attempt("ensemble search", lambda: search_ensembles(
                load_predictions(pool, subset, views=views), metric=metric, **boot))
    return report
