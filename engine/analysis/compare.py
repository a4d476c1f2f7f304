"""The comparisons the studio shows: folds, hard vs soft voting, TTA gains, label smoothing.

Each function returns a dataclass of DataFrames (and a ``to_dict()`` for JSON) that a page draws as
is. Every "A vs B" carries a paired-bootstrap interval (``*_low`` / ``*_high`` columns, 95%).

Conventions: a run's TTA views are merged with one mode (default ``mean``) unless a function is
about TTA itself; "soft" is the mean of probabilities and "hard" the majority of predicted labels
(ties to the lowest class index); class names (not indices) appear in the sample-level frames.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.bootstrap import paired_bootstrap
from engine.analysis.calibration import apply_temperature, confidence_histogram, entropy_histogram, fit_temperature
from engine.analysis.load import PredictionSet, RunInfo, load_predictions, open_run, open_runs
from engine.analysis.metrics import confusion, predict_labels, reliability, score, softmax
from engine.analysis.tta import TTA_MODES, check_tta_mode
from engine.analysis.voting import combine, vote_counts
from engine.errors import AnalysisError

COMPARED_METRICS = ("accuracy", "macro_f1")


def _frame_records(frame: pd.DataFrame | None) -> list[dict] | None:
    if frame is None:
        return None
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _differences(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_classes: int, *, n_resamples: int, seed: int,
                 metrics: Sequence[str] = COMPARED_METRICS) -> pd.DataFrame:
    """One row per metric: ``metric``, ``a``, ``b``, ``diff`` (a - b), ``diff_low``, ``diff_high``, ``excludes_zero``."""
    rows = []
    for metric in metrics:
        r = paired_bootstrap(y, a, b, metric=metric, n_classes=n_classes, n_resamples=n_resamples, seed=seed)
        rows.append({"metric": metric, "a": r.value_a, "b": r.value_b, "diff": r.diff, "diff_low": r.diff_range[0],
                     "diff_high": r.diff_range[1], "excludes_zero": r.excludes_zero})
    return pd.DataFrame(rows)


def merged(preds: PredictionSet, views: Sequence[str] | None = None, tta: str = "mean") -> PredictionSet:
    """``preds`` with each (run, fold)'s views merged by ``tta`` (all views when ``views`` is None)."""
    return preds.merge_tta(tta, views)


# ------------------------------------------------------------------ folds


@dataclass
class FoldComparison:
    """How the fold models of one run compare.

    Attributes:
        oof: per fold: ``fold``, ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``log_loss``,
            ``brier``, ``ece`` — each fold model on its own validation fold (out-of-fold).
        holdout: the same per fold model on the holdout, plus rows ``soft vote`` and ``hard vote`` of all
            fold models (``fold`` holds the row's name); None without a holdout.
        agreement: per subset (``holdout``, ``test``): fold x fold share of samples with the same predicted class.
        correlation: per subset: fold x fold Pearson correlation of the flattened class probabilities.
        disagreements: per subset: the samples the fold models disagree on — ``sample_id``, ``label``
            (holdout), one column per fold model with its predicted class, ``n_classes_predicted``.
        views: the views merged (with ``tta``) into each fold model's prediction.
    """

    run_id: str
    views: list[str]
    tta: str
    oof: pd.DataFrame | None
    holdout: pd.DataFrame | None
    agreement: dict[str, pd.DataFrame] = field(default_factory=dict)
    correlation: dict[str, pd.DataFrame] = field(default_factory=dict)
    disagreements: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_dict(self, max_rows: int = 20) -> dict:
        return {"run_id": self.run_id, "views": self.views, "tta": self.tta, "oof": _frame_records(self.oof),
                "holdout": _frame_records(self.holdout),
                "agreement": {k: v.round(4).to_dict() for k, v in self.agreement.items()},
                "correlation": {k: v.round(4).to_dict() for k, v in self.correlation.items()},
                "n_disagreements": {k: int(len(v)) for k, v in self.disagreements.items()},
                "disagreements": {k: _frame_records(v.head(max_rows)) for k, v in self.disagreements.items()}}


def _fold_pairs(preds: PredictionSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    names = [f"fold{m.fold}" for m in preds.members]
    proba = preds.proba()
    labels = predict_labels(proba)
    agreement = (labels[:, None, :] == labels[None, :, :]).mean(axis=2)
    flat = proba.reshape(proba.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(flat) if len(names) > 1 else np.ones((1, 1))
    ordered = np.sort(labels, axis=0)
    n_distinct = (ordered[1:] != ordered[:-1]).sum(axis=0) + 1
    rows = np.flatnonzero(n_distinct > 1)
    classes = np.asarray(preds.classes, dtype=object)
    dis = pd.DataFrame({"sample_id": preds.sample_ids[rows]})
    if preds.has_labels:
        dis["label"] = classes[preds.labels[rows]]
    for i, name in enumerate(names):
        dis[name] = classes[labels[i, rows]]
    dis["n_classes_predicted"] = n_distinct[rows]
    return (pd.DataFrame(agreement, index=names, columns=names), pd.DataFrame(correlation, index=names, columns=names),
            dis)


def compare_folds(run: str | Path | RunInfo, *, views: Sequence[str] | None = None, tta: str = "mean",
                  workspace: str | Path | None = None) -> FoldComparison:
    """Per-fold metrics (OOF and holdout), agreement / correlation / disagreements of the fold models."""
    run = open_run(run, workspace=workspace)
    check_tta_mode(tta)
    oof_table = None
    used_views: list[str] = []
    if run.folds("oof"):
        raw = load_predictions(run, "oof", views=views)
        used_views = raw.views()
        oof = merged(raw, views, tta)
        proba = softmax(oof.logits[0])
        rows = []
        for fold in np.unique(oof.fold_of):
            mask = oof.fold_of == fold
            rows.append({"fold": int(fold), "n": int(mask.sum()), **score(oof.labels[mask], proba=proba[mask])})
        oof_table = pd.DataFrame(rows)
    result = FoldComparison(run_id=run.run_id, views=used_views, tta=tta, oof=oof_table, holdout=None)
    for subset in ("holdout", "test"):
        if not run.folds(subset):
            continue
        raw = load_predictions(run, subset, views=views)
        if raw.n_samples == 0:
            continue
        result.views = result.views or raw.views()
        preds = merged(raw, views, tta)
        agreement, correlation, dis = _fold_pairs(preds)
        result.agreement[subset], result.correlation[subset], result.disagreements[subset] = agreement, correlation, dis
        if subset == "holdout" and preds.has_labels:
            proba = preds.proba()
            rows = [{"fold": f"fold{m.fold}", "n": preds.n_samples, **score(preds.labels, proba=proba[i])}
                    for i, m in enumerate(preds.members)]
            for kind in ("soft", "hard"):
                labels, p = combine(preds.logits, kind)
                rows.append({"fold": f"{kind} vote", "n": preds.n_samples, **score(preds.labels, proba=p, y_pred=labels)})
            result.holdout = pd.DataFrame(rows)
    return result


def fold_confusions(run: str | Path | RunInfo, *, views: Sequence[str] | None = None, tta: str = "mean",
                    workspace: str | Path | None = None) -> dict[int, np.ndarray]:
    """Per fold: the OOF confusion matrix ``(classes, classes)`` of that fold's model (rows: true class,
    counts), with each model's views merged by ``tta``."""
    preds = merged(load_predictions(run, "oof", views=views, workspace=workspace), views, tta)
    labels = predict_labels(preds.proba()[0])
    return {int(f): confusion(preds.labels[preds.fold_of == f], labels[preds.fold_of == f], preds.n_classes)
            for f in np.unique(preds.fold_of)}


def fold_confidences(run: str | Path | RunInfo, subset: str, *, views: Sequence[str] | None = None,
                     tta: str = "mean", workspace: str | Path | None = None) -> pd.DataFrame:
    """Per sample of ``subset`` (``holdout`` / ``test``): each fold model's top probability, one column
    ``fold<k>`` per fold model, indexed by ``sample_id``."""
    preds = merged(load_predictions(run, subset, views=views, workspace=workspace), views, tta)
    top = preds.proba().max(axis=2)
    return pd.DataFrame({f"fold{m.fold}": top[i] for i, m in enumerate(preds.members)},
                        index=pd.Index(preds.sample_ids, name="sample_id"))


# ------------------------------------------------------------------ hard vs soft voting


@dataclass
class VotingComparison:
    """Soft vs hard voting over the members of a prediction set.

    Attributes:
        subset: ``holdout`` (fold models) or ``oof`` (runs).
        members: the member labels voted over.
        metrics: rows ``soft``, ``hard`` and ``best single`` (the best member by accuracy): ``voting``,
            ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``log_loss``, ``brier``, ``ece``
            (hard voting has no probabilities: NaN for the last three).
        differences: soft minus hard per metric with its bootstrap interval (see :func:`_differences`).
        disagreements: samples where the two disagree: ``sample_id``, ``label``, ``soft``, ``hard``,
            ``soft_confidence`` (top mean probability), ``hard_vote_share`` (share of votes for the hard winner).
    """

    subset: str
    members: list[str]
    metrics: pd.DataFrame
    differences: pd.DataFrame
    disagreements: pd.DataFrame

    def metric(self, voting: str, name: str) -> float:
        return float(self.metrics.set_index("voting").loc[voting, name])

    def to_dict(self, max_rows: int = 20) -> dict:
        by_kind = {r["voting"]: {k: v for k, v in r.items() if k != "voting"} for r in _frame_records(self.metrics)}
        return {"subset": self.subset, "members": self.members, **by_kind,
                "soft_minus_hard": {r["metric"]: {k: v for k, v in r.items() if k != "metric"}
                                    for r in _frame_records(self.differences)},
                "n_disagreements": int(len(self.disagreements)),
                "disagreements": _frame_records(self.disagreements.head(max_rows))}


def compare_voting(preds: PredictionSet, *, weights: Sequence[float] | None = None, n_resamples: int = 1000,
                   seed: int = 0) -> VotingComparison:
    """Soft vs hard voting over every member of ``preds`` (labelled), with bootstrap intervals of the difference."""
    if not preds.has_labels:
        raise AnalysisError(f"Voting is compared on labelled predictions (oof or holdout), not on {preds.subset}.")
    y = preds.labels
    soft_labels, soft_proba = combine(preds.logits, "soft", weights)
    hard_labels, _ = combine(preds.logits, "hard", weights)
    proba = preds.proba()
    singles = [(float(np.mean(predict_labels(proba[i]) == y)), i) for i in range(preds.n_members)]
    best = max(singles, key=lambda t: (t[0], -t[1]))[1]
    metrics = pd.DataFrame([
        {"voting": "soft", **score(y, proba=soft_proba, y_pred=soft_labels)},
        {"voting": "hard", **score(y, y_pred=hard_labels)},
        {"voting": "best single", **score(y, proba=proba[best])},
    ])
    differences = _differences(y, soft_labels, hard_labels, preds.n_classes, n_resamples=n_resamples, seed=seed)
    votes = vote_counts(predict_labels(proba), preds.n_classes, weights)
    rows = np.flatnonzero(soft_labels != hard_labels)
    classes = np.asarray(preds.classes, dtype=object)
    disagreements = pd.DataFrame({
        "sample_id": preds.sample_ids[rows], "label": classes[y[rows]], "soft": classes[soft_labels[rows]],
        "hard": classes[hard_labels[rows]], "soft_confidence": soft_proba[rows].max(axis=1),
        "hard_vote_share": votes[rows, hard_labels[rows]] / votes[rows].sum(axis=1)})
    return VotingComparison(subset=preds.subset, members=[m.label for m in preds.members], metrics=metrics,
                            differences=differences, disagreements=disagreements)


# ------------------------------------------------------------------ TTA


@dataclass
class TTAComparison:
    """Gain of each view and of each merged set of views over the baseline view (identity) alone.

    Attributes:
        subset: ``oof`` (each sample by its fold model; several runs are soft-voted) or ``holdout``
            (fold models soft-voted).
        baseline_view: the view every row is compared with (``identity`` when present).
        baseline: its ``accuracy``, ``macro_f1``, ``log_loss``.
        gains: one row per (views, mode): ``views`` ("+"-joined), ``n_views``, ``mode`` (None for a
            single view), ``accuracy``, ``macro_f1``, ``log_loss``, and per compared metric ``<m>_gain``,
            ``<m>_gain_low``, ``<m>_gain_high``, ``<m>_gain_excludes_zero``.
    """

    subset: str
    baseline_view: str
    baseline: dict
    gains: pd.DataFrame

    def gain_per_view(self) -> dict[str, dict]:
        """``{view: {accuracy_gain, accuracy_gain_low, ...}}`` for the single views (baseline included, gain 0)."""
        single = self.gains[self.gains["n_views"] == 1]
        return {r["views"]: {k: v for k, v in r.items() if k not in ("views", "n_views", "mode")}
                for r in _frame_records(single)}

    def to_dict(self) -> dict:
        return {"subset": self.subset, "baseline_view": self.baseline_view, "baseline": self.baseline,
                "gain_per_view": self.gain_per_view(), "merged": _frame_records(self.gains[self.gains["n_views"] > 1])}


def default_view_sets(views: Sequence[str], baseline: str) -> list[tuple[str, ...]]:
    """Sets of two or more views to merge: all of them for up to 4 views; else each view with the
    baseline, and all views together."""
    views = list(views)
    if len(views) <= 4:
        return [s for k in range(2, len(views) + 1) for s in itertools.combinations(views, k)]
    others = [v for v in views if v != baseline]
    return [(baseline, v) for v in others] + [tuple(views)]


def compare_tta(runs: Sequence[str | Path | RunInfo] | str | Path | RunInfo, *, subset: str = "oof",
                modes: Sequence[str] = TTA_MODES, view_sets: Sequence[Sequence[str]] | None = None,
                n_resamples: int = 1000, seed: int = 0, workspace: str | Path | None = None) -> TTAComparison:
    """TTA gains over the baseline view on ``subset``; the runs' members are soft-voted after merging."""
    preds = load_predictions(runs, subset, workspace=workspace)
    if not preds.has_labels:
        raise AnalysisError(f"TTA gains are measured on labelled predictions (oof or holdout), not on {subset}.")
    for mode in modes:
        check_tta_mode(mode)
    views = preds.views()
    baseline_view = "identity" if "identity" in views else views[0]
    y, c = preds.labels, preds.n_classes

    def voted(view_set: Sequence[str], mode: str) -> tuple[np.ndarray, np.ndarray]:
        m = preds.merge_tta(mode, view_set)
        return combine(m.logits, "soft")

    base_labels, base_proba = voted([baseline_view], "mean")
    baseline = {k: v for k, v in score(y, proba=base_proba, y_pred=base_labels).items()
                if k in ("accuracy", "macro_f1", "log_loss")}
    sets = [tuple(s) for s in view_sets] if view_sets is not None else default_view_sets(views, baseline_view)
    jobs = [((v,), None) for v in views] + [(s, mode) for s in sets if len(s) > 1 for mode in modes]
    rows = []
    for view_set, mode in jobs:
        labels, proba = voted(view_set, mode or "mean")
        row = {"views": "+".join(view_set), "n_views": len(view_set), "mode": mode,
               **{k: v for k, v in score(y, proba=proba, y_pred=labels).items() if k in ("accuracy", "macro_f1", "log_loss")}}
        for metric in COMPARED_METRICS:
            r = paired_bootstrap(y, labels, base_labels, metric=metric, n_classes=c, n_resamples=n_resamples, seed=seed)
            row.update({f"{metric}_gain": r.diff, f"{metric}_gain_low": r.diff_range[0],
                        f"{metric}_gain_high": r.diff_range[1], f"{metric}_gain_excludes_zero": r.excludes_zero})
        rows.append(row)
    return TTAComparison(subset=subset, baseline_view=baseline_view, baseline=baseline, gains=pd.DataFrame(rows))


# ------------------------------------------------------------------ label smoothing

# Config fields that may differ between runs that "differ only in label smoothing".
_IGNORED_FIELDS = frozenset({"name", "device", "tta_views", "train.num_workers", "train.label_smoothing"})


def find_label_smoothing_groups(runs: Sequence[RunInfo]) -> list[list[RunInfo]]:
    """Groups (two or more runs, ascending smoothing) whose configs differ only in ``train.label_smoothing``
    (and fields that do not change training: name, device, tta_views, train.num_workers)."""
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        flat = pd.json_normalize(run.config, sep=".").iloc[0].to_dict()
        rest = {k: v for k, v in flat.items() if k not in _IGNORED_FIELDS}
        groups.setdefault(repr(sorted(rest.items(), key=lambda kv: kv[0])), []).append(run)
    out = []
    for members in groups.values():
        members = sorted(members, key=lambda r: r.label_smoothing)
        if len({r.label_smoothing for r in members}) >= 2:
            out.append(members)
    return out


@dataclass
class LabelSmoothingComparison:
    """Runs that differ only in label smoothing, side by side, before and after temperature scaling.

    Temperature ``T`` is fitted per run on its OOF predictions (NLL, 1-D search on log T) and applied
    to OOF (in-sample for T) and to the holdout fold ensemble (out-of-sample). Scaling leaves accuracy
    and macro-F1 unchanged and moves log loss / ECE: what remains different between runs after it is
    not calibration.

    Attributes:
        runs: ``run_id``, ``name``, ``label_smoothing``, ``temperature``.
        metrics: ``run_id``, ``label_smoothing``, ``subset`` (oof / holdout), ``calibration`` (raw /
            temperature), ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``log_loss``, ``brier``, ``ece``.
        differences: each run vs the lowest smoothing on OOF: ``run_id``, ``label_smoothing``, ``metric``,
            ``diff``, ``diff_low``, ``diff_high``, ``excludes_zero`` (accuracy, macro-F1, log loss).
        reliability: reliability-diagram rows (see :func:`~engine.analysis.metrics.reliability`) per
            ``run_id``, ``label_smoothing``, ``calibration`` on OOF.
        confidence_histogram / entropy_histogram: ``lower``, ``upper``, ``count``, ``fraction`` per
            ``run_id``, ``label_smoothing``, ``calibration`` on OOF.
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    differences: pd.DataFrame
    reliability: pd.DataFrame
    confidence_histogram: pd.DataFrame
    entropy_histogram: pd.DataFrame

    def to_dict(self) -> dict:
        return {"runs": _frame_records(self.runs), "metrics": _frame_records(self.metrics),
                "differences": _frame_records(self.differences)}


def compare_label_smoothing(runs: Sequence[str | Path | RunInfo], *, views: Sequence[str] | None = None,
                            tta: str = "mean", n_resamples: int = 1000, seed: int = 0,
                            workspace: str | Path | None = None) -> LabelSmoothingComparison:
    """Compare runs that differ only in label smoothing (refused otherwise) on OOF and the holdout."""
    infos = open_runs(runs, workspace=workspace)
    groups = find_label_smoothing_groups(infos)
    if len(groups) != 1 or len(groups[0]) != len(infos):
        raise AnalysisError(f"Runs {[r.run_id for r in infos]} do not differ only in train.label_smoothing "
                            "(with different values); compare runs of one label-smoothing study.")
    infos = groups[0]
    oof = merged(load_predictions(infos, "oof", views=views), views, tta)
    holdout = None
    if all(r.folds("holdout") for r in infos):
        holdout = merged(load_predictions(infos, "holdout", views=views), views, tta)
    y = oof.labels
    run_rows, metric_rows, rel_rows, conf_rows, ent_rows = [], [], [], [], []
    raw_proba: dict[str, np.ndarray] = {}
    for i, run in enumerate(infos):
        logits = oof.logits[i]
        temperature = fit_temperature(logits, y)
        run_rows.append({"run_id": run.run_id, "name": run.name, "label_smoothing": run.label_smoothing,
                         "temperature": temperature})
        tag = {"run_id": run.run_id, "label_smoothing": run.label_smoothing}
        for calibration, t in (("raw", 1.0), ("temperature", temperature)):
            proba = np.exp(apply_temperature(logits, t))
            if calibration == "raw":
                raw_proba[run.run_id] = proba
            metric_rows.append({**tag, "subset": "oof", "calibration": calibration,
                                **score(y, proba=proba)})
            rel_rows.append(reliability(y, proba).assign(**tag, calibration=calibration))
            conf_rows.append(confidence_histogram(proba).assign(**tag, calibration=calibration))
            ent_rows.append(entropy_histogram(proba).assign(**tag, calibration=calibration))
            if holdout is not None:
                mine = holdout.select(lambda m, rid=run.run_id: m.run_id == rid)
                labels, hp = combine(mine.logits / t, "soft")
                metric_rows.append({**tag, "subset": "holdout", "calibration": calibration,
                                    **score(holdout.labels, proba=hp, y_pred=labels)})
    base = infos[0]
    diff_rows = []
    for run in infos[1:]:
        d = _differences(y, raw_proba[run.run_id], raw_proba[base.run_id], oof.n_classes, n_resamples=n_resamples,
                         seed=seed, metrics=("accuracy", "macro_f1", "log_loss"))
        diff_rows.append(d.assign(run_id=run.run_id, label_smoothing=run.label_smoothing,
                                  baseline_run_id=base.run_id))
    front = ["run_id", "label_smoothing", "calibration"]

    def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
        f = pd.concat(frames, ignore_index=True)
        return f[front + [c for c in f.columns if c not in front]]

    return LabelSmoothingComparison(
        runs=pd.DataFrame(run_rows), metrics=pd.DataFrame(metric_rows),
        differences=pd.concat(diff_rows, ignore_index=True), reliability=tidy(rel_rows),
        confidence_histogram=tidy(conf_rows), entropy_histogram=tidy(ent_rows))


# ------------------------------------------------------------------ augmentation (runs that differ only in `augment`)

# Config fields that may differ between runs that "differ only in augmentation".
_AUGMENT_IGNORED = frozenset({"name", "device", "tta_views", "train.num_workers"})


def augmentation_label(config: dict) -> str:
    """A run's pipeline in a word: its preset name (``light``, ...) or ``custom: A + B + C``."""
    from engine.augment.presets import preset_name_of

    spec = config.get("augment")
    name = preset_name_of(spec, config.get("image_size"))
    if name:
        return name
    return "custom: " + " + ".join(pipeline_transforms(spec)) if spec else "light"


def pipeline_transforms(spec: dict | None) -> list[str]:
    """The transform class names of a serialized pipeline, in order (nested OneOf / SomeOf members included)."""
    def walk(node: dict) -> list[str]:
        children = node.get("transforms")
        if children is None:
            return [str(node.get("__class_fullname__", "?")).rsplit(".", 1)[-1]]
        return [name for child in children for name in walk(child)]

    return walk(spec["transform"]) if isinstance(spec, dict) and isinstance(spec.get("transform"), dict) else []


def find_augmentation_groups(runs: Sequence[RunInfo]) -> list[list[RunInfo]]:
    """Groups (two or more runs) whose configs differ only in ``augment`` (and fields that do not change training:
    name, device, tta_views, train.num_workers), with at least two different pipelines; each group ordered from
    the fewest transforms to the most (none < light < medium < heavy), then by run id."""
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        flat = pd.json_normalize({k: v for k, v in run.config.items() if k != "augment"}, sep=".").iloc[0].to_dict()
        rest = {k: v for k, v in flat.items() if k not in _AUGMENT_IGNORED}
        groups.setdefault(repr(sorted(rest.items(), key=lambda kv: kv[0])), []).append(run)
    out = []
    for members in groups.values():
        pipelines = {repr(r.config.get("augment")) for r in members}
        if len(members) >= 2 and len(pipelines) >= 2:
            out.append(sorted(members, key=lambda r: (len(pipeline_transforms(r.config.get("augment"))), r.run_id)))
    return out


@dataclass
class AugmentationComparison:
    """Runs that differ only in their augmentation pipeline, against one of them (the baseline).

    Measured on OOF (each sample by the fold model that did not see it; the runs share a split, so
    every sample is compared with itself), and on the holdout (each run's fold models soft-voted)
    when every run has one. Views are merged with ``tta``.

    Attributes:
        baseline_run_id: the run every difference is taken against.
        runs: ``run_id``, ``name``, ``augment`` (preset name or ``custom: ...``), ``transforms`` (class
            names in order), ``added`` / ``removed`` (transform names vs the baseline's pipeline).
        metrics: ``run_id``, ``augment``, ``subset`` (oof / holdout), ``accuracy``, ``balanced_accuracy``,
            ``macro_f1``, ``log_loss``, ``brier``, ``ece``.
        differences: each other run minus the baseline on OOF: ``run_id``, ``augment``, ``metric``, ``a``,
            ``b``, ``diff``, ``diff_low``, ``diff_high``, ``excludes_zero`` (accuracy, macro-F1, log loss).
        per_class: each other run vs the baseline per class on OOF: ``run_id``, ``augment``, ``class``,
            ``support``, ``recall_baseline``, ``recall``, ``diff`` (recall gain), ``diff_low``, ``diff_high``,
            ``excludes_zero``, ``f1_baseline``, ``f1``, ``fixed`` (samples the baseline got wrong and this run
            right), ``broken`` (the reverse).
        specs: ``run_id`` -> the serialized pipeline (for previews).
    """

    baseline_run_id: str
    runs: pd.DataFrame
    metrics: pd.DataFrame
    differences: pd.DataFrame
    per_class: pd.DataFrame
    specs: dict[str, dict] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"baseline_run_id": self.baseline_run_id, "runs": _frame_records(self.runs),
                "metrics": _frame_records(self.metrics), "differences": _frame_records(self.differences),
                "per_class": _frame_records(self.per_class)}


def _per_class_gain(y: np.ndarray, run_labels: np.ndarray, base_labels: np.ndarray, classes: list[str], *,
                    n_resamples: int, seed: int) -> pd.DataFrame:
    """Per class: recall gain (run minus baseline) with its paired-bootstrap interval, F1 of both, fixed / broken."""
    from engine.analysis.metrics import per_class

    run_pc, base_pc = per_class(y, run_labels, classes), per_class(y, base_labels, classes)
    rows = []
    for c, name in enumerate(classes):
        mask = y == c
        row = {"class": name, "support": int(mask.sum()), "recall_baseline": float(base_pc.at[c, "recall"]),
               "recall": float(run_pc.at[c, "recall"]), "f1_baseline": float(base_pc.at[c, "f1"]),
               "f1": float(run_pc.at[c, "f1"])}
        if mask.any():
            r = paired_bootstrap(y[mask], run_labels[mask], base_labels[mask], metric="accuracy",
                                 n_classes=len(classes), n_resamples=n_resamples, seed=seed)
            row.update(diff=r.diff, diff_low=r.diff_range[0], diff_high=r.diff_range[1],
                       excludes_zero=r.excludes_zero)
        right_run, right_base = run_labels[mask] == c, base_labels[mask] == c
        row.update(fixed=int((right_run & ~right_base).sum()), broken=int((~right_run & right_base).sum()))
        rows.append(row)
    front = ["class", "support", "recall_baseline", "recall", "diff", "diff_low", "diff_high", "excludes_zero"]
    frame = pd.DataFrame(rows)
    return frame[[c for c in front if c in frame] + [c for c in frame if c not in front]]


def compare_augmentation(runs: Sequence[str | Path | RunInfo], *, baseline: str | None = None,
                         views: Sequence[str] | None = None, tta: str = "mean", n_resamples: int = 1000,
                         seed: int = 0, workspace: str | Path | None = None) -> AugmentationComparison:
    """Compare runs that differ only in their augmentation pipeline (refused otherwise) on OOF and the holdout.

    ``baseline``: the run id every difference is taken against (default: the run with the fewest transforms).
    """
    infos = open_runs(runs, workspace=workspace)
    groups = find_augmentation_groups(infos)
    if len(groups) != 1 or len(groups[0]) != len(infos):
        raise AnalysisError(f"Runs {[r.run_id for r in infos]} do not differ only in their augmentation pipeline "
                            "('augment'); compare runs of one augmentation study (e.g. vary: {augment: [light, "
                            "medium]}).")
    infos = groups[0]
    ids = [r.run_id for r in infos]
    if baseline is not None and baseline not in ids:
        raise AnalysisError(f"The 'baseline' parameter must be one of the compared runs {ids}. Got {baseline!r}.")
    base_index = ids.index(baseline) if baseline is not None else 0
    oof = merged(load_predictions(infos, "oof", views=views), views, tta)
    holdout = None
    if all(r.folds("holdout") for r in infos):
        holdout = merged(load_predictions(infos, "holdout", views=views), views, tta)
    y, classes = oof.labels, list(oof.classes)
    proba = oof.proba()
    labels = predict_labels(proba)
    base_spec = infos[base_index].config.get("augment")
    base_transforms = pipeline_transforms(base_spec)
    run_rows, metric_rows, diff_rows, class_rows = [], [], [], []
    for i, run in enumerate(infos):
        label = augmentation_label(run.config)
        transforms = pipeline_transforms(run.config.get("augment"))
        run_rows.append({"run_id": run.run_id, "name": run.name, "augment": label, "transforms": transforms,
                         "added": [t for t in transforms if t not in base_transforms],
                         "removed": [t for t in base_transforms if t not in transforms]})
        metric_rows.append({"run_id": run.run_id, "augment": label, "subset": "oof", **score(y, proba=proba[i])})
        if holdout is not None:
            mine = holdout.select(lambda m, rid=run.run_id: m.run_id == rid)
            voted, hp = combine(mine.logits, "soft")
            metric_rows.append({"run_id": run.run_id, "augment": label, "subset": "holdout",
                                **score(holdout.labels, proba=hp, y_pred=voted)})
        if i == base_index:
            continue
        tag = {"run_id": run.run_id, "augment": label}
        d = _differences(y, proba[i], proba[base_index], oof.n_classes, n_resamples=n_resamples, seed=seed,
                         metrics=("accuracy", "macro_f1", "log_loss"))
        diff_rows.append(d.assign(**tag))
        class_rows.append(_per_class_gain(y, labels[i], labels[base_index], classes, n_resamples=n_resamples,
                                          seed=seed).assign(**tag))
    front = ["run_id", "augment"]

    def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
        f = pd.concat(frames, ignore_index=True)
        return f[front + [c for c in f.columns if c not in front]]

    return AugmentationComparison(
        baseline_run_id=ids[base_index], runs=pd.DataFrame(run_rows), metrics=pd.DataFrame(metric_rows),
        differences=tidy(diff_rows), per_class=tidy(class_rows),
        specs={r.run_id: r.config.get("augment") for r in infos})
