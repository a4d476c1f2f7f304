"""Label issues: the training images whose given label is probably wrong, found from out-of-sample predictions.

The idea is confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty
in Dataset Labels", JAIR 2021), written here from the paper's definitions. With ``labels`` ``(n,)``
(the given labels) and out-of-sample probabilities ``proba`` ``(n, K)``:

1. **Thresholds.** ``t_j`` = the mean probability of class ``j`` over the samples labelled ``j`` (the
   class's average self-confidence). A class nobody is labelled with gets no threshold (never reached).
2. **Confident joint** ``C`` ``(K, K)``, rows the given label, columns the true one: a sample labelled
   ``i`` counts in ``C[i, j]`` where ``j`` is its most probable class among those at or above their
   threshold; a sample above no threshold is not counted.
3. **Calibration.** Each row of ``C`` is rescaled to the number of samples labelled ``i`` (a row with no
   confident sample keeps them on its diagonal) and the whole divided by its sum: the joint
   ``Q[i, j] ~ P(given = i, true = j)``. The noise matrix ``P(given = i | true = j)`` is ``Q`` with each
   column normalised.
4. **Pruning** (``method``): ``prune_by_count`` (default) — the ``round(n (1 - trace Q))`` samples (the
   estimated number of wrong labels) ranked lowest by ``rank_by``; ``prune_by_noise_rate`` — for each
   off-diagonal ``(i, j)``, the
   ``round(n Q[i, j])`` samples labelled ``i`` with the largest margin ``p_j - p_i``; ``prune_by_class`` —
   for each class ``i``, the ``round(n sum_{j != i} Q[i, j])`` samples labelled ``i`` with the lowest
   self-confidence; ``both`` — flagged by both; ``confident_joint`` — counted off the diagonal of ``C``;
   ``argmax`` — the most probable class is not the given one (no confident learning: the plain rule).
   A sample whose most probable class *is* its given label is never flagged: it offers no other label.
5. **Ranking** (``rank_by``): ``self_confidence`` ``p_given`` (default), or ``normalized_margin``
   ``p_given - max_{k != given} p_k``; lowest first. The suggested label is the most probable class.

Everything is vectorized (sorts and ``bincount`` over samples; loops run over classes or members only).

:func:`label_issues` reads runs: the OOF predictions of each run (each sample by the fold model that
did not train on it) and, when the runs have one, the holdout (every fold model), each run's TTA views
merged, probabilities averaged over runs (and over fold models on the holdout). Runs must share a
split (a study). Each sample also says which members (run / fold models) predict the suggested label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.load import PredictionSet, RunInfo, load_predictions, open_runs
from engine.analysis.metrics import predict_labels
from engine.analysis.tta import check_tta_mode
from engine.errors import AnalysisError

METHODS = ("prune_by_count", "prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax")
RANK_BY = ("self_confidence", "normalized_margin")
SUBSETS = ("oof", "holdout")
ISSUE_COLUMNS = ["rank", "sample_id", "subset", "given", "suggested", "self_confidence", "margin", "flagged",
                 "fold", "agree", "n_agree", "n_members", "given_index", "suggested_index"]


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise AnalysisError(f"The {name!r} parameter must be a str among {list(allowed)}. Got {value!r} instead.")
    return value


def _check_inputs(labels: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    if proba.ndim != 2 or labels.shape != (proba.shape[0],):
        raise AnalysisError(f"Expected labels (n,) and probabilities (n, classes); got {labels.shape} and "
                            f"{proba.shape}.")
    if proba.shape[0] == 0:
        raise AnalysisError("Label issues need at least one labelled sample.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= proba.shape[1]:
        raise AnalysisError(f"Labels must be class indices in [0, {proba.shape[1]}) (test samples have none); "
                            f"got values from {labels.min()} to {labels.max()}.")
    if not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise AnalysisError("Probabilities must be finite and non-negative.")
    return labels.astype(np.int64), proba / proba.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ the math (arrays in, arrays out)


def per_class_thresholds(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``t_j``: mean ``proba[:, j]`` over the samples labelled ``j``; ``inf`` for a class nobody has. ``(K,)``."""
    labels, proba = _check_inputs(labels, proba)
    k = proba.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=proba[np.arange(len(labels)), labels], minlength=k)
    return np.divide(sums, counts, out=np.full(k, np.inf), where=counts > 0)


def confident_joint(labels: np.ndarray, proba: np.ndarray, thresholds: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint ``C`` ``(K, K)`` int64 (rows: given, columns: true) and each sample's confident
    class ``(n,)`` (-1 when no class reaches its threshold)."""
    labels, proba = _check_inputs(labels, proba)
    k = proba.shape[1]
    t = per_class_thresholds(labels, proba) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    above = proba >= t[None, :]
    confident = np.where(above, proba, -np.inf).argmax(axis=1)
    confident[~above.any(axis=1)] = -1
    counted = confident >= 0
    joint = np.bincount(labels[counted] * k + confident[counted], minlength=k * k).reshape(k, k)
    return joint.astype(np.int64), confident


def calibrated_joint(joint: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``Q`` ``(K, K)``, summing to 1: each row of ``joint`` rescaled to its class count (a row with no
    confident sample keeps its class count on the diagonal), then normalised."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    joint = np.asarray(joint, dtype=np.float64)
    rows = joint.sum(axis=1)
    scaled = joint * np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)[:, None]
    empty = (rows == 0) & (counts > 0)
    scaled[empty, empty.nonzero()[0]] = counts[empty]
    total = scaled.sum()
    return scaled / total if total > 0 else scaled


def noise_matrix(joint_q: np.ndarray) -> np.ndarray:
    """``P(given = i | true = j)`` ``(K, K)``: each column of the joint normalised (an empty column: identity)."""
    q = np.asarray(joint_q, dtype=np.float64)
    cols = q.sum(axis=0)
    out = np.divide(q, cols[None, :], out=np.zeros_like(q), where=cols[None, :] > 0)
    empty = cols == 0
    out[empty.nonzero()[0], empty.nonzero()[0]] = 1.0
    return out


def _ranked_within(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each entry within its group, groups ordered by ascending ``keys`` (stable)."""
    order = np.lexsort((keys, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - starts
    return rank


def prune_by_noise_rate(labels: np.ndarray, proba: np.ndarray, joint_q: np.ndarray) -> np.ndarray:
    """Flags ``(n,)``: for each off-diagonal ``(i, j)``, the ``round(n Q[i, j])`` samples labelled ``i`` with the
    largest margin ``p_j - p_i``."""
    labels, proba = _check_inputs(labels, proba)
    n, k = proba.shape
    quota = np.rint(n * np.asarray(joint_q)).astype(np.int64)
    np.fill_diagonal(quota, 0)
    margin = proba - proba[np.arange(n), labels][:, None]  # (n, K): p_j - p_given
    cells = (labels[:, None] * k + np.arange(k)[None, :]).ravel()
    rank = _ranked_within(cells, -margin.ravel())
    hit = rank < quota.ravel()[cells]
    return hit.reshape(n, k).any(axis=1)


def prune_by_class(labels: np.ndarray, proba: np.ndarray, joint_q: np.ndarray) -> np.ndarray:
    """Flags ``(n,)``: for each class ``i``, the ``round(n sum_{j != i} Q[i, j])`` samples labelled ``i`` with the
    lowest self-confidence."""
    labels, proba = _check_inputs(labels, proba)
    n = len(labels)
    q = np.asarray(joint_q, dtype=np.float64)
    quota = np.rint(n * (q.sum(axis=1) - np.diag(q))).astype(np.int64)
    rank = _ranked_within(labels, proba[np.arange(n), labels])
    return rank < quota[labels]


def prune_by_count(labels: np.ndarray, proba: np.ndarray, joint_q: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Flags ``(n,)``: the ``round(n (1 - trace Q))`` samples with the lowest ``quality`` among those whose most
    probable class is not their given label (the only ones that suggest another)."""
    labels, proba = _check_inputs(labels, proba)
    n = len(labels)
    count = int(np.rint(n * (1.0 - np.trace(np.asarray(joint_q, dtype=np.float64)))))
    candidates = np.flatnonzero(predict_labels(proba) != labels)
    chosen = candidates[np.argsort(np.asarray(quality)[candidates], kind="stable")[:count]]
    flags = np.zeros(n, dtype=bool)
    flags[chosen] = True
    return flags


def quality_scores(labels: np.ndarray, proba: np.ndarray, rank_by: str = "self_confidence") -> np.ndarray:
    """Label quality per sample ``(n,)``, lower meaning more likely wrong: ``p_given`` (self-confidence), or
    ``p_given - max_{k != given} p_k`` (normalized margin)."""
    _check_choice("rank_by", rank_by, RANK_BY)
    labels, proba = _check_inputs(labels, proba)
    n = len(labels)
    given = proba[np.arange(n), labels]
    if rank_by == "self_confidence":
        return given
    others = proba.copy()
    others[np.arange(n), labels] = -np.inf
    return given - others.max(axis=1)


@dataclass
class IssueArrays:
    """What :func:`find_label_issues` computes, all aligned with the input samples."""

    flagged: np.ndarray  # (n,) bool
    suggested: np.ndarray  # (n,) int64, the most probable class
    self_confidence: np.ndarray  # (n,) p_given
    margin: np.ndarray  # (n,) normalized margin p_given - max other
    quality: np.ndarray  # (n,) the ranking score (lower first)
    thresholds: np.ndarray  # (K,)
    confident_joint: np.ndarray  # (K, K) counts
    joint: np.ndarray  # (K, K) calibrated, sums to 1
    noise_matrix: np.ndarray  # (K, K) P(given | true)


def find_label_issues(labels: np.ndarray, proba: np.ndarray, *, method: str = "prune_by_count",
                      rank_by: str = "self_confidence") -> IssueArrays:
    """Confident learning on one probability matrix (see the module docstring).

    Args:
        labels: ``(n,)`` given class indices.
        proba: ``(n, K)`` out-of-sample probabilities (rows are renormalised).
        method: one of :data:`METHODS` (default ``prune_by_count``).
        rank_by: one of :data:`RANK_BY` (default ``self_confidence``).
    """
    _check_choice("method", method, METHODS)
    _check_choice("rank_by", rank_by, RANK_BY)
    labels, proba = _check_inputs(labels, proba)
    k = proba.shape[1]
    thresholds = per_class_thresholds(labels, proba)
    cj, confident = confident_joint(labels, proba, thresholds)
    q = calibrated_joint(cj, labels, k)
    suggested = predict_labels(proba)
    margin = quality_scores(labels, proba, "normalized_margin")
    self_conf = proba[np.arange(len(labels)), labels]
    quality = margin if rank_by == "normalized_margin" else self_conf
    if method == "prune_by_count":
        flagged = prune_by_count(labels, proba, q, quality)
    elif method == "argmax":
        flagged = np.ones(len(labels), dtype=bool)
    elif method == "confident_joint":
        flagged = (confident >= 0) & (confident != labels)
    elif method == "prune_by_noise_rate":
        flagged = prune_by_noise_rate(labels, proba, q)
    elif method == "prune_by_class":
        flagged = prune_by_class(labels, proba, q)
    else:
        flagged = prune_by_noise_rate(labels, proba, q) & prune_by_class(labels, proba, q)
    flagged &= suggested != labels
    return IssueArrays(flagged=flagged, suggested=suggested.astype(np.int64), self_confidence=self_conf,
                       margin=margin, quality=quality,
                       thresholds=thresholds, confident_joint=cj, joint=q, noise_matrix=noise_matrix(q))


def ranking_auroc(is_issue: np.ndarray, quality: np.ndarray) -> float:
    """AUROC of a ranking (lower ``quality`` = more suspect) at finding the samples where ``is_issue``.

    The probability that a random issue ranks before a random clean sample (ties count half), i.e.
    scikit-learn's ``roc_auc_score(is_issue, -quality)``. NaN when one of the two groups is empty.
    """
    from sklearn.metrics import roc_auc_score

    is_issue = np.asarray(is_issue, dtype=bool)
    if is_issue.all() or not is_issue.any():
        return float("nan")
    return float(roc_auc_score(is_issue, -np.asarray(quality, dtype=np.float64)))


# ------------------------------------------------------------------ runs -> a ranked table


@dataclass
class LabelIssues:
    """Label issues of the runs' labelled, out-of-sample predictions.

    Attributes:
        issues: one row per sample, ranked (flagged first, then by ``rank_by``, lowest first):
            ``rank`` (1-based), ``sample_id``, ``subset`` (oof / holdout), ``given``, ``suggested`` (class
            names), ``self_confidence`` (probability of the given label), ``margin`` (normalized margin),
            ``flagged``, ``fold`` (the fold whose model predicted an OOF sample; NA on the holdout),
            ``agree`` (members predicting the suggested label, e.g. ``"run-a/fold2, run-b/fold2"``),
            ``n_agree``, ``n_members``, ``given_index``, ``suggested_index``.
        proba: ``(n, K)`` averaged probabilities, row for row with ``issues``.
        classes: the ordered class list.
        thresholds: ``(K,)`` per-class thresholds.
        confident_joint / joint / noise_matrix: ``(K, K)`` frames, index ``given``, columns ``true``.
        runs: the run ids; subsets: the subsets read; notes: what was left out and why.
    """

    issues: pd.DataFrame
    proba: np.ndarray = field(repr=False)
    classes: list[str]
    thresholds: np.ndarray
    confident_joint: pd.DataFrame
    joint: pd.DataFrame
    noise_matrix: pd.DataFrame
    method: str
    rank_by: str
    runs: list[str]
    subsets: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def n_flagged(self) -> int:
        return int(self.issues["flagged"].sum())

    @property
    def noise_rate(self) -> float:
        """Estimated share of samples whose given label is wrong: the joint's off-diagonal mass."""
        q = self.joint.to_numpy()
        return float(q.sum() - np.trace(q))

    def flagged(self) -> pd.DataFrame:
        return self.issues[self.issues["flagged"]].reset_index(drop=True)

    def to_dict(self, max_rows: int | None = 50) -> dict:
        rows = self.flagged() if max_rows is None else self.flagged().head(max_rows)
        records = rows.drop(columns=["given_index", "suggested_index"]).astype(object)
        return {"runs": self.runs, "subsets": self.subsets, "method": self.method, "rank_by": self.rank_by,
                "n_samples": int(len(self.issues)), "n_flagged": self.n_flagged,
                "estimated_noise_rate": round(self.noise_rate, 6), "classes": self.classes,
                "thresholds": [round(float(t), 6) if np.isfinite(t) else None for t in self.thresholds],
                "issues": records.where(records.notna(), None).to_dict(orient="records"),
                "confident_joint": self.confident_joint.to_numpy().tolist(),
                "noise_matrix": self.noise_matrix.round(6).to_numpy().tolist(),
                "noise_matrix_axes": "rows: given label, columns: true label; each column sums to 1",
                "notes": self.notes}

    def to_text(self, max_rows: int = 30) -> str:
        flagged = self.flagged()
        lines = [f"Label issues of {', '.join(self.runs)} ({' + '.join(self.subsets)}, {len(self.issues)} samples): "
                 f"{len(flagged)} flagged ({self.method}, ranked by {self.rank_by.replace('_', ' ')}); "
                 f"estimated noise rate {self.noise_rate:.1%}.", ""]
        if flagged.empty:
            lines.append("No sample flagged.")
        else:
            shown = flagged.head(max_rows)[["rank", "sample_id", "subset", "given", "suggested", "self_confidence",
                                            "margin", "fold", "agree"]]
            lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            if len(flagged) > max_rows:
                lines.append(f"... {len(flagged) - max_rows} more (--top N, or --json)")
        lines += ["", "Estimated noise matrix P(given label | true label) (rows: given, columns: true):",
                  self.noise_matrix.to_string(float_format=lambda v: f"{v:.3f}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _averaged(preds: PredictionSet, views, tta: str) -> tuple[PredictionSet, np.ndarray]:
    """Views merged per member; returns the merged set and the members' mean probabilities ``(n, K)``."""
    merged = preds.merge_tta(tta, views)
    return merged, merged.proba().mean(axis=0)


def _agreement(merged: PredictionSet, suggested: np.ndarray, names: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(agree text, count) per sample: the members whose most probable class is ``suggested``."""
    top = predict_labels(merged.proba())  # (members, n)
    hits = top == suggested[None, :]
    text = np.full(merged.n_samples, "", dtype=object)
    for i, m in enumerate(merged.members):  # members are few (runs x folds); samples are vectorized
        if m.fold is None:
            label = np.char.add(f"{names.get(m.run_id, m.run_id)}/fold", merged.fold_of.astype(str)).astype(object)
        else:
            label = np.full(merged.n_samples, f"{names.get(m.run_id, m.run_id)}/fold{m.fold}", dtype=object)
        sep = np.where(text == "", "", ", ").astype(object)
        text = np.where(hits[i], text + sep + label, text)
    return text, hits.sum(axis=0)


def label_issues(runs: Sequence[str | Path | RunInfo] | str | Path | RunInfo, *,
                 subsets: Sequence[str] = SUBSETS, method: str = "prune_by_count", rank_by: str = "self_confidence",
                 views: Sequence[str] | None = None, tta: str = "mean",
                 workspace: str | Path | None = None) -> LabelIssues:
    """Rank the runs' labelled samples by how likely their given label is wrong (confident learning).

    Args:
        runs: one run, or runs of one study (they share a split: their predictions line up).
        subsets: ``oof`` and / or ``holdout``; a subset the runs lack is skipped with a note.
        method: pruning rule, one of :data:`METHODS` (default ``prune_by_count``: as many as the estimated
            number of wrong labels, lowest ``rank_by`` first).
        rank_by: ``self_confidence`` (default) or ``normalized_margin``.
        views, tta: the TTA views merged into each model's prediction, and how (default: all, mean).
    """
    if isinstance(runs, (str, Path, RunInfo)):
        runs = [runs]
    _check_choice("method", method, METHODS)
    _check_choice("rank_by", rank_by, RANK_BY)
    check_tta_mode(tta)
    subsets = list(dict.fromkeys(subsets))
    for s in subsets:
        _check_choice("subsets", s, SUBSETS)
    if not subsets:
        raise AnalysisError(f"The 'subsets' parameter must name at least one of {list(SUBSETS)}.")
    infos = open_runs(runs, workspace=workspace)
    names = {r.run_id: r.name for r in infos}
    parts, notes = [], []
    for subset in subsets:
        if not all(r.folds(subset) for r in infos):
            lacking = [r.run_id for r in infos if not r.folds(subset)]
            notes.append(f"{subset}: left out, run(s) {lacking} have no {subset} predictions.")
            continue
        merged, proba = _averaged(load_predictions(infos, subset, views=views), views, tta)
        if merged.n_samples:
            parts.append((subset, merged, proba))
    if not parts:
        raise AnalysisError(f"Runs {[r.run_id for r in infos]} have no labelled predictions in {subsets} yet "
                            "(finish a fold first).")
    classes = parts[0][1].classes
    for subset, merged, _ in parts[1:]:
        if merged.classes != classes:
            raise AnalysisError(f"The {subset} predictions have classes {merged.classes[:10]}, the OOF ones "
                                f"{classes[:10]}.")
    labels = np.concatenate([m.labels for _, m, _ in parts])
    proba = np.concatenate([p for _, _, p in parts])
    found = find_label_issues(labels, proba, method=method, rank_by=rank_by)
    agree, n_agree, folds, offset = [], [], [], 0
    for _, merged, _ in parts:
        a, n = _agreement(merged, found.suggested[offset:offset + merged.n_samples], names)
        offset += merged.n_samples
        agree.append(a)
        n_agree.append(n)
        folds.append(merged.fold_of if merged.fold_of is not None else np.full(merged.n_samples, -1))
    names_arr = np.asarray(classes, dtype=object)
    frame = pd.DataFrame({
        "sample_id": np.concatenate([m.sample_ids for _, m, _ in parts]).astype(str),
        "subset": np.concatenate([np.full(m.n_samples, s, dtype=object) for s, m, _ in parts]),
        "given": names_arr[labels], "suggested": names_arr[found.suggested],
        "self_confidence": found.self_confidence, "margin": found.margin, "flagged": found.flagged,
        "fold": pd.Series(np.concatenate(folds)).where(lambda f: f >= 0).astype("Int64"),
        "agree": np.concatenate(agree), "n_agree": np.concatenate(n_agree).astype(np.int64),
        "n_members": np.concatenate([np.full(m.n_samples, m.n_members) for _, m, _ in parts]).astype(np.int64),
        "given_index": labels, "suggested_index": found.suggested,
    })
    order = np.lexsort((frame["sample_id"].to_numpy(), found.quality, ~found.flagged))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    axes = {"index": pd.Index(classes, name="given"), "columns": pd.Index(classes, name="true")}
    return LabelIssues(issues=frame[ISSUE_COLUMNS], proba=proba[order], classes=list(classes),
                       thresholds=found.thresholds, confident_joint=pd.DataFrame(found.confident_joint, **axes),
                       joint=pd.DataFrame(found.joint, **axes), noise_matrix=pd.DataFrame(found.noise_matrix, **axes),
                       method=method, rank_by=rank_by, runs=[r.run_id for r in infos],
                       subsets=[s for s, _, _ in parts], notes=notes)


# ------------------------------------------------------------------ duplicates of a suspect image


def duplicate_partners(scan_table: pd.DataFrame, sample_ids: Sequence[str], labels: pd.Series | None = None, *,
                       near_duplicate_distance: int = 4) -> pd.DataFrame:
    """The training images that duplicate each of ``sample_ids`` (same bytes, or perceptual hashes within
    ``near_duplicate_distance`` bits — the Data page's duplicate groups), with their labels.

    Args:
        scan_table: :func:`engine.data.scan.scan_dataset`'s table (``sample_id``, ``split``, ``label``, ``path``,
            ``sha1``, ``phash``).
        sample_ids: the images to look up.
        labels: ``sample_id -> label`` to use instead of the scan's (the manifest's, after overrides).

    Returns ``sample_id``, ``partner_id``, ``partner_label``, ``partner_path``, ``kind`` (``exact`` / ``near``),
    ``same_label``; vectorized (one join of the looked-up images with their groups).
    """
    from engine.data.eda import _duplicate_groups  # the Data page's grouping, so both name the same duplicates

    columns = ["sample_id", "partner_id", "partner_label", "partner_path", "kind", "same_label"]
    train = scan_table[scan_table["split"] == "train"].reset_index(drop=True)
    if train.empty or not len(sample_ids):
        return pd.DataFrame(columns=columns)
    group = _duplicate_groups(train, near_duplicate_distance)
    label = train["label"].astype(str)
    if labels is not None:
        label = train["sample_id"].astype(str).map(labels).fillna(label).astype(str)
    rows = pd.DataFrame({"sample_id": train["sample_id"].astype(str), "group": group, "label": label,
                         "path": train["path"].astype(str), "sha1": train["sha1"]})
    sizes = rows["group"].map(rows["group"].value_counts())
    asked = rows[rows["sample_id"].isin(set(map(str, sample_ids))) & (sizes > 1)]
    pairs = asked.merge(rows, on="group", suffixes=("", "_p"))
    pairs = pairs[pairs["sample_id"] != pairs["sample_id_p"]]
    exact = pairs["sha1"].notna() & (pairs["sha1"] == pairs["sha1_p"])
    return pd.DataFrame({"sample_id": pairs["sample_id"].to_numpy(), "partner_id": pairs["sample_id_p"].to_numpy(),
                         "partner_label": pairs["label_p"].to_numpy(), "partner_path": pairs["path_p"].to_numpy(),
                         "kind": np.where(exact, "exact", "near"),
                         "same_label": (pairs["label"] == pairs["label_p"]).to_numpy()}, columns=columns)
