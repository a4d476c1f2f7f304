"""Choosing ensembles: exhaustive search over member subsets, greedy selection with replacement.

Both search over the members of a labelled :class:`~engine.analysis.load.PredictionSet` (runs x
folds x views, e.g. every fold model under every view on the holdout) with ``soft`` (mean of
probabilities) or ``hard`` (majority, ties to the lowest class index) voting:

- :func:`exhaustive_search`: every non-empty subset of up to ~12 members, equal weights;
- :func:`greedy_selection`: Caruana et al. (2004), "Ensemble selection from libraries of models":
  start from the best single member, repeatedly add (with replacement) the member that most
  improves the ensemble, keep the best ensemble seen; member weights are how often each was added;
- :func:`search_ensembles`: the one the studio calls — exhaustive when it is affordable, greedy
  otherwise — ranked by a metric, with a paired-bootstrap interval of each top ensemble's gain over
  the best single member.

Scores are measured on the same samples the search chooses on, so the winner's score is optimistic;
the interval says whether its gain over the best single member is distinguishable from noise there.

How it stays fast (:class:`VoteTable`): a vote is a weighted sum over members of per-class values
(probabilities, or one-hot labels for hard voting) and the prediction is its top class. For each
sample only classes that *can* win under some non-negative weighting matter — for hard voting the
classes some member predicts; for soft voting those whose best member probability reaches a lower
bound of the winner's mean probability. Samples left with one candidate are decided once. The others
are stored as each member's value of every candidate minus the first; a batch of weightings is scored
with one product ``weights (B, members) @ values (members, candidates x samples)`` (for every subset,
a subset-sum DP and broadcast adds instead), a pass over the few candidates, and one product of the
choices with a fixed matrix that turns them into per-class predicted and true-positive counts.
A greedy step only rescores the samples whose current lead is small enough for one member to change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.analysis.bootstrap import paired_bootstrap
from engine.analysis.load import PredictionSet
from engine.analysis.metrics import macro_f1_from_counts, score, softmax
from engine.analysis.voting import TIE_TOLERANCE, combine
from engine.errors import AnalysisError

SEARCH_METRICS = ("accuracy", "macro_f1")
GREEDY_METRICS = ("accuracy", "macro_f1", "log_loss")
MAX_EXHAUSTIVE_MEMBERS = 14
_BLOCK_ELEMENTS = 4_000_000
_GAIN_MAX_ELEMENTS = 50_000_000
_MEAN_BOUND_CLASSES = 4  # class sets of the soft-vote lower bound: the top 1..4 classes by mean logit
_FLOAT32_PRUNE_SLACK = 1e-5  # > twice the rounding of float32 probabilities (<= ~2e-6) plus the tie tolerance


def _one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread: the search issues many mid-sized products, and a multi-threaded
    BLAS makes each wait for all its threads: measured 2.7x slower when the cores are busy (a training
    job, the studio) and 1.8x slower when they are nearly idle."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def _check(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise AnalysisError(f"The {name!r} parameter must be a str among {list(allowed)}. Got {value!r} instead.")
    return value


@dataclass
class _Bucket:
    """Contested samples with (at most) ``width`` candidate classes each, ascending, padded with class 0."""

    cand: np.ndarray  # (width, n) candidate classes
    y: np.ndarray  # (n,) true classes
    rel: np.ndarray  # (members, (width - 1) * n): each member's value of candidate k minus candidate 0, k >= 1
    gain: np.ndarray | None  # ((width - 1) * n, 2C): change of (predicted, tp) counts when a sample picks candidate k

    @property
    def width(self) -> int:
        return self.cand.shape[0]

    @property
    def n(self) -> int:
        return self.cand.shape[1]


class VoteTable:
    """Members' per-class votes on labelled samples, reduced to what a weighting can change.

    Args:
        logits: ``(members, samples, classes)`` logits or log-probabilities.
        y_true: ``(samples,)`` class indices.
        voting: ``soft`` (values are probabilities) or ``hard`` (values are one-hot predicted labels).

    :meth:`scores` scores any non-negative weightings ``(B, members)`` (a matrix product);
    :meth:`subset_scores` every non-empty subset with equal weights (sums built by a subset DP).
    """

    def __init__(self, logits: np.ndarray, y_true: np.ndarray, voting: str):
        _check(voting, ("soft", "hard"), "voting")
        self.voting = voting
        self.n_members, n, self.n_classes = logits.shape
        self.y = np.asarray(y_true).astype(np.int64)
        self.support = np.bincount(self.y, minlength=self.n_classes)
        # Hard votes are small integers, exact in float32; probabilities are summed in float64.
        self._dtype = np.float32 if voting == "hard" else np.float64
        if voting == "hard":
            labels = np.argmax(logits, axis=2)
            alive = np.zeros((n, self.n_classes), dtype=bool)
            alive[np.arange(n)[None, :], labels] = True
        else:
            labels = None
            alive = self._soft_candidates(logits)
        k = alive.sum(axis=1)
        fixed = k == 1
        self.n_fixed = int(fixed.sum())
        # Every contested sample starts at its first candidate; buckets record what choosing another changes.
        first = np.argmax(alive, axis=1)
        c = self.n_classes
        self.base_predicted = np.bincount(first, minlength=c)
        self.base_tp = np.bincount(first[first == self.y], minlength=c)
        self.buckets: list[_Bucket] = []
        width = np.ceil(np.log2(np.maximum(k, 2))).astype(np.int64)  # buckets of up to 2, 4, 8, ... candidates
        for w in np.unique(width[~fixed]):
            rows = np.flatnonzero(~fixed & (width == w))
            self.buckets.append(self._bucket(logits, labels, alive, rows))
        self._running: tuple[np.ndarray, list[np.ndarray]] | None = None  # (base, base @ rel per bucket)
        self._last_step: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (base, tp, predicted) per member

    def _soft_candidates(self, logits: np.ndarray) -> np.ndarray:
        """(samples, classes) bool: classes that can win the soft vote under some non-negative weighting.

        With ``p̄`` the weighted mean of the members' probabilities, the winner scores at least
        ``p̄[a]`` for any class ``a`` and at least the mean of ``p̄`` over any set of classes, so at
        least ``max(max_a min_m p_m[a], max_j min_m mean of p_m over the j classes of highest mean logit)``
        (``j`` up to :data:`_MEAN_BOUND_CLASSES`); a class whose best member probability is below that
        bound, less a slack, can never be the winner, nor tie with it, and is dropped. The slack covers
        the tie tolerance and, for float32 logits (the stored format), the rounding of computing the
        bound in float32: it only ever keeps a class, and the kept candidates' values are float64.
        """
        m, n, c = logits.shape
        alive = np.empty((n, c), dtype=bool)
        chunk = max(1, _BLOCK_ELEMENTS // (8 * c))
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            alive[rows] = _soft_candidates_chunk(logits[:, rows])
        return alive

    def _bucket(self, logits, labels, alive, rows) -> _Bucket:
        k = alive[rows].sum(axis=1)
        width, n_b, c = int(k.max()), len(rows), self.n_classes
        order = np.argsort(~alive[rows], axis=1, kind="stable")[:, :width]  # candidates, ascending
        pad = np.arange(width)[None, :] >= k[:, None]
        cand = np.where(pad, 0, order)
        # (members, candidates, samples): sample rows contiguous, so reductions over classes are element-wise
        values = np.empty((self.n_members, width, n_b), dtype=self._dtype)
        cand_flat = cand.T * n_b + np.arange(n_b)  # (width, n_b) positions in a (classes, samples) array
        for m in range(self.n_members):  # a loop over members, never over samples
            if labels is None:  # float64 probabilities of the candidates only: exp(logit - log-normaliser)
                z = np.ascontiguousarray(logits[m, rows].T, dtype=np.float64)  # (classes, samples)
                top = z.max(axis=0)
                lse = top + np.log(np.exp(z - top).sum(axis=0))
                v = np.exp(np.take(z, cand_flat) - lse)
            else:
                v = labels[m, rows][None, :] == cand.T
            np.copyto(values[m], np.where(pad.T, -1.0, v))  # a padded slot scores below every real candidate
        rel = (values[:, 1:, :] - values[:, :1, :]).reshape(self.n_members, -1)
        y = self.y[rows]
        gain = None
        if (width - 1) * n_b * 2 * c <= _GAIN_MAX_ELEMENTS:
            # row (j - 1) * n_b + i: sample i choosing candidate j instead of candidate 0 moves one prediction
            # from cand[i, 0] to cand[i, j] and changes the true positives of class y[i] by the difference
            real = ~pad[:, 1:].T.ravel()
            row = np.arange((width - 1) * n_b)[real]
            to, frm = cand[:, 1:].T.ravel()[real], np.tile(cand[:, 0], width - 1)[real]
            y_row = np.tile(y, width - 1)[real]
            keys = np.concatenate([row * 2 * c + to, row * 2 * c + frm, row * 2 * c + c + y_row])
            amounts = np.concatenate([np.ones(len(row)), -np.ones(len(row)),
                                      (to == y_row).astype(np.float64) - (frm == y_row)])
            dtype = np.float32 if n_b < 2**24 else np.float64
            gain = np.bincount(keys, amounts, minlength=(width - 1) * n_b * 2 * c).astype(dtype)
            gain = gain.reshape((width - 1) * n_b, 2 * c)
        return _Bucket(cand=cand.T.copy(), y=y, rel=rel, gain=gain)

    @property
    def n_contested(self) -> int:
        return sum(b.n for b in self.buckets)

    def _evaluate(self, bucket: _Bucket, rel_sums: np.ndarray, tol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Changes of (predicted, tp) counts ``(B, C)`` from the bucket's samples, for weighted sums ``(B, (K-1) n)``."""
        b, width, n = rel_sums.shape[0], bucket.width, bucket.n
        r = rel_sums.reshape(b, width - 1, n)
        # The winner is the first candidate within tol of the top (candidate 0 sits at relative sum 0).
        if width == 2:
            sel = (r[:, 0, :] > tol[:, None])[:, None, :]
        else:
            top = np.maximum(r[:, 0, :], 0.0)
            for j in range(1, width - 1):
                np.maximum(top, r[:, j, :], out=top)
            top -= tol[:, None]
            found = top <= 0
            sel = np.empty((b, width - 1, n), dtype=bool)
            for j in range(width - 1):
                ge = r[:, j, :] >= top
                np.greater(ge, found, out=sel[:, j, :])  # ge and not found
                found |= ge
        c = self.n_classes
        if bucket.gain is not None:
            counts = np.rint(sel.reshape(b, -1).astype(bucket.gain.dtype) @ bucket.gain).astype(np.int64)
            return counts[:, :c], counts[:, c:]
        pred = np.broadcast_to(bucket.cand[0], (b, n)).copy()
        for j in range(width - 1):
            np.copyto(pred, bucket.cand[j + 1][None, :], where=sel[:, j, :])
        offsets = (np.arange(b, dtype=np.int64) * c)[:, None]
        keys = pred + offsets
        predicted = np.bincount(keys.ravel(), minlength=b * c).reshape(b, c)
        tp = np.bincount(np.where(pred == bucket.y, keys, b * c).ravel(), minlength=b * c + 1)[:-1].reshape(b, c)
        first = bucket.cand[0]
        predicted -= np.bincount(first, minlength=c)[None, :]
        tp -= np.bincount(first[first == bucket.y], minlength=c)[None, :]
        return predicted, tp

    def class_counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class true positives and predicted counts, each ``(B, C)``, for weightings ``(B, members)``."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        b_total = weights.shape[0]
        tp = np.tile(self.base_tp, (b_total, 1))
        predicted = np.tile(self.base_predicted, (b_total, 1))
        for bucket in self.buckets:
            step = max(1, _BLOCK_ELEMENTS // bucket.rel.shape[1])
            for start in range(0, b_total, step):
                w = weights[start:start + step]
                d_pred, d_tp = self._evaluate(bucket, w.astype(self._dtype) @ bucket.rel,
                                              TIE_TOLERANCE * w.sum(axis=1))
                predicted[start:start + step] += d_pred
                tp[start:start + step] += d_tp
        return tp, predicted

    def step_class_counts(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`class_counts` of ``base + e_m`` for every member ``m`` (one greedy step): ``(members, C)`` each.

        Adding one member moves any two candidates' sums apart by at most 1 (values lie in [0, 1]), so a
        sample whose winner leads the runner-up by more than that keeps its prediction: only the others
        are scored per member, as a change from the base ensemble's counts. The base's sums are kept
        between calls, so consecutive greedy steps (a base that grew by a member) update them with
        that member's row instead of a product over every member.
        """
        base = np.asarray(base, dtype=np.float64)
        m = self.n_members
        base_counts = self._known_counts(base)
        if base_counts is None:
            base_counts = self.class_counts(base[None, :])
        tp, predicted = np.tile(base_counts[0], (m, 1)), np.tile(base_counts[1], (m, 1))
        base_tol = np.array([TIE_TOLERANCE * base.sum()])
        step_tol = np.full(m, TIE_TOLERANCE * (base.sum() + 1))
        for bucket, flat in zip(self.buckets, self._base_sums(base), strict=True):
            width, n = bucket.width, bucket.n
            sums = flat.reshape(width - 1, n)
            active = np.flatnonzero(_lead(sums) <= 1.0 + 4 * step_tol[0] + 1e-9)
            if active.size == 0:
                continue
            if active.size == n:
                sub, now = bucket, flat[None, :]
            else:
                cols = (np.arange(width - 1)[:, None] * n + active[None, :]).ravel()
                sub = _Bucket(cand=bucket.cand[:, active], y=bucket.y[active], rel=bucket.rel[:, cols],
                              gain=None if bucket.gain is None else bucket.gain[cols])
                now = sums[:, active].ravel()[None, :]
            p_before, t_before = self._evaluate(sub, now, base_tol)
            p_after, t_after = self._evaluate(sub, now + sub.rel, step_tol)
            predicted += p_after - p_before
            tp += t_after - t_before
        self._last_step = (base.copy(), tp, predicted)
        return tp, predicted

    def _known_counts(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The class counts of ``base`` when the last step scored it: the last base plus one member."""
        if self._last_step is None:
            return None
        last, tp, predicted = self._last_step
        delta = base - last
        added = np.flatnonzero(delta)
        if len(added) != 1 or delta[added[0]] != 1:
            return None
        return tp[added[0]].copy(), predicted[added[0]].copy()

    def _base_sums(self, base: np.ndarray) -> list[np.ndarray]:
        """``base @ rel`` of every bucket, ``((K-1) n,)`` each; from the last call's when only a few members changed."""
        if self._running is not None:
            last, sums = self._running
            changed = np.flatnonzero(base != last)
            if len(changed) <= 2:
                delta = (base - last)[changed].astype(self._dtype)
                sums = [s + delta @ bucket.rel[changed] for s, bucket in zip(sums, self.buckets, strict=True)]
                self._running = (base.copy(), sums)
                return sums
        sums = [base.astype(self._dtype) @ bucket.rel for bucket in self.buckets]
        self._running = (base.copy(), sums)
        return sums

    def subset_class_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`class_counts` of every subset with equal weights, row ``s - 1`` for the subset whose bits are ``s``.

        The subset sums are built without a matrix product: members split into a low and a high group,
        the sums of every low subset and of every high subset come from a DP (each adds one member to a
        smaller subset), and each block of subsets sharing their high members is one broadcast add.
        """
        m = self.n_members
        n_low = min(m, 6)
        codes_low = np.arange(2 ** n_low)
        size_low = np.array([bin(i).count("1") for i in codes_low])
        tp = np.tile(self.base_tp, (2 ** m, 1))
        predicted = np.tile(self.base_predicted, (2 ** m, 1))
        for bucket in self.buckets:
            low, high = _subset_sums(bucket.rel[:n_low]), _subset_sums(bucket.rel[n_low:])

            block = np.empty_like(low)
            for h in range(high.shape[0]):
                np.add(low, high[h], out=block)
                rows = slice(h << n_low, (h + 1) << n_low)
                size = size_low + bin(h).count("1")
                d_pred, d_tp = self._evaluate(bucket, block, TIE_TOLERANCE * np.maximum(size, 1))
                predicted[rows] += d_pred
                tp[rows] += d_tp
        return tp[1:], predicted[1:]

    def _scores(self, tp: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
        n = self.y.shape[0]
        return {"accuracy": tp.sum(axis=1) / n, "macro_f1": macro_f1_from_counts(tp, predicted, self.support[None, :])}

    def step_scores(self, base: np.ndarray) -> dict[str, np.ndarray]:
        """``accuracy`` and ``macro_f1`` ``(members,)`` of ``base + e_m`` for each member (see :meth:`step_class_counts`)."""
        return self._scores(*self.step_class_counts(base))

    def scores(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """``accuracy`` and ``macro_f1`` ``(B,)`` of each weighting ``(B, members)``."""
        return self._scores(*self.class_counts(weights))

    def subset_scores(self) -> dict[str, np.ndarray]:
        """``accuracy`` and ``macro_f1`` of every non-empty subset, row ``s - 1`` for subset bits ``s``."""
        return self._scores(*self.subset_class_counts())


def _lead(rel_sums: np.ndarray) -> np.ndarray:
    """How far each sample's top candidate leads the runner-up: ``(n,)`` from sums relative to candidate 0
    ``(K-1, n)`` (candidate 0 itself sits at 0)."""
    top = np.maximum(rel_sums[0], 0.0)
    second = np.minimum(rel_sums[0], 0.0)
    for row in rel_sums[1:]:
        np.maximum(second, np.minimum(top, row), out=second)
        np.maximum(top, row, out=top)
    return top - second


def _subset_sums(rel: np.ndarray) -> np.ndarray:
    """Sums of the rows of ``rel`` ``(k, X)`` over every subset: ``(2^k, X)``, row ``s`` for subset bits ``s``."""
    k = rel.shape[0]
    out = np.zeros((2 ** k, rel.shape[1]), dtype=rel.dtype)
    for s in range(1, 2 ** k):
        low_bit = (s & -s).bit_length() - 1
        np.add(out[s & (s - 1)], rel[low_bit], out=out[s])
    return out


def _soft_candidates_chunk(logits: np.ndarray) -> np.ndarray:
    """:meth:`VoteTable._soft_candidates` for a chunk of samples, logits ``(members, samples, classes)``.

    Works on (classes, samples) copies: numpy reduces over a short last axis (10 classes) one row at a
    time, about 20x slower than the same reduction as element-wise operations on rows of samples.
    """
    m_count, n, c = logits.shape
    dtype = np.float32 if logits.dtype == np.float32 else np.float64
    slack = _FLOAT32_PRUNE_SLACK if dtype == np.float32 else 2 * TIE_TOLERANCE
    lo = np.full((c, n), np.inf, dtype=dtype)
    hi = np.full((c, n), -np.inf, dtype=dtype)
    # Class sets for the mean bound: the j classes of highest mean logit (any fixed sets give a valid bound).
    j = min(c, _MEAN_BOUND_CLASSES)
    order = np.argsort(-logits.mean(axis=0, dtype=dtype), axis=1, kind="stable")[:, :j].T
    top_flat = order * n + np.arange(n)  # (j, n) positions in the flattened (classes, samples) array
    top_means = np.full((j, n), np.inf, dtype=dtype)
    sizes = np.arange(1, j + 1, dtype=dtype)[:, None]
    p = np.empty((c, n), dtype=dtype)
    for m in range(m_count):  # a loop over members, never over samples
        np.copyto(p, logits[m].T)
        p -= p.max(axis=0)
        np.exp(p, out=p)
        p /= p.sum(axis=0)
        np.minimum(lo, p, out=lo)
        np.maximum(hi, p, out=hi)
        means = np.take(p, top_flat)
        for k in range(1, j):  # running sums over rows (np.cumsum along a short axis is slower)
            means[k] += means[k - 1]
        means /= sizes
        np.minimum(top_means, means, out=top_means)
    bound = np.maximum(lo.max(axis=0), top_means.max(axis=0))
    return (hi >= bound - slack).T


def _subsets(n_members: int) -> tuple[np.ndarray, np.ndarray]:
    """Every non-empty subset, by size then bit code: codes ``(2^M - 1,)`` and 0/1 rows ``(2^M - 1, M)``."""
    codes = np.arange(1, 2 ** n_members, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(n_members)) & 1).astype(np.float64)
    order = np.lexsort((codes, bits.sum(axis=1)))
    return codes[order], bits[order]


def _require_labelled(preds: PredictionSet) -> None:
    if not preds.has_labels:
        raise AnalysisError(f"Ensembles are chosen on labelled predictions (oof or holdout), not on {preds.subset}.")


@_one_blas_thread
def exhaustive_search(preds: PredictionSet, *, voting: tuple[str, ...] = ("soft", "hard"),
                      max_members: int = MAX_EXHAUSTIVE_MEMBERS) -> pd.DataFrame:
    """Score every non-empty subset of members (equal weights) under each voting kind.

    Returns one row per (voting, subset): ``voting``, ``members`` (list of member labels),
    ``member_index`` (tuple of indices into ``preds.members``), ``n_members``, ``accuracy``, ``macro_f1``.
    """
    _require_labelled(preds)
    m = preds.n_members
    if m > max_members:
        raise AnalysisError(f"Exhaustive search over {m} members means {2 ** m - 1} subsets; it is capped at "
                            f"{max_members} members. Use greedy_selection (or pick fewer runs / folds / views).")
    codes, masks = _subsets(m)
    labels = [mem.label for mem in preds.members]
    index = [tuple(np.flatnonzero(row).tolist()) for row in masks]
    frames = []
    for kind in voting:
        table = VoteTable(preds.logits, preds.labels, kind)
        s = table.subset_scores()
        frames.append(pd.DataFrame({"voting": kind, "members": [[labels[i] for i in ix] for ix in index],
                                    "member_index": index, "n_members": masks.sum(axis=1).astype(int),
                                    "accuracy": s["accuracy"][codes - 1], "macro_f1": s["macro_f1"][codes - 1]}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class GreedyResult:
    """Outcome of :func:`greedy_selection`.

    Attributes:
        weights: ``(members,)`` int, how often each member was added (the ensemble's weights).
        score: the metric of the chosen ensemble.
        history: one row per step: ``step``, ``added`` (member label), ``score`` (after adding it).
        members: the member labels, aligned with ``weights``.
    """

    voting: str
    metric: str
    weights: np.ndarray
    score: float
    history: pd.DataFrame
    members: list[str] = field(default_factory=list)

    def chosen(self) -> dict[str, int]:
        """``{member label: weight}`` of the members in the ensemble."""
        return {lab: int(w) for lab, w in zip(self.members, self.weights, strict=True) if w > 0}


@_one_blas_thread
def greedy_selection(preds: PredictionSet, *, voting: str = "soft", metric: str = "accuracy",
                     n_steps: int = 50) -> GreedyResult:
    """Caruana-style forward selection with replacement, starting from the best single member.

    Each step scores adding each member once more (all members at once), adds the best (ties to the
    lowest index) and records the score; the result is the best ensemble over the steps (earliest on
    ties), so it never scores below the best single member. ``metric`` ``log_loss`` needs soft voting.
    """
    _require_labelled(preds)
    _check(voting, ("soft", "hard"), "voting")
    _check(metric, GREEDY_METRICS, "metric")
    if metric == "log_loss" and voting != "soft":
        raise AnalysisError("Greedy selection by log_loss needs soft voting (hard votes have no probabilities).")
    m = preds.n_members
    sign = -1.0 if metric == "log_loss" else 1.0  # maximise sign * metric
    if metric == "log_loss":
        # Soft-vote log loss only needs each member's probability of the true class.
        p_true = np.stack([np.take_along_axis(softmax(preds.logits[i]), preds.labels[:, None], axis=1)[:, 0]
                           for i in range(m)])
        eps = np.finfo(np.float64).eps

        def evaluate(w: np.ndarray) -> np.ndarray:
            mix = (w @ p_true) / w.sum(axis=1, keepdims=True)
            return -np.log(np.clip(mix, eps, 1.0)).mean(axis=1)

        def add_one(w: np.ndarray) -> np.ndarray:
            return evaluate(w[None, :] + np.eye(m))
    else:
        table = VoteTable(preds.logits, preds.labels, voting)

        def evaluate(w: np.ndarray) -> np.ndarray:
            return table.scores(w)[metric]

        def add_one(w: np.ndarray) -> np.ndarray:
            return table.step_scores(w)[metric]

    singles = sign * evaluate(np.eye(m))
    weights = np.zeros(m)
    first = int(np.argmax(singles))
    weights[first] = 1
    labels = [mem.label for mem in preds.members]
    rows = [{"step": 0, "added": labels[first], "score": float(sign * singles[first])}]
    best_score, best_weights = singles[first], weights.copy()
    for step in range(1, n_steps + 1):
        trial = sign * add_one(weights)
        pick = int(np.argmax(trial))
        weights[pick] += 1
        rows.append({"step": step, "added": labels[pick], "score": float(sign * trial[pick])})
        if trial[pick] > best_score:
            best_score, best_weights = trial[pick], weights.copy()
    return GreedyResult(voting=voting, metric=metric, weights=best_weights.astype(np.int64),
                        score=float(sign * best_score), history=pd.DataFrame(rows), members=labels)


@dataclass
class EnsembleSearch:
    """Ranked ensembles of a prediction set (what the studio's "Combinations" view draws).

    Attributes:
        method: ``exhaustive`` or ``greedy``.
        metric: the ranking metric (``accuracy`` or ``macro_f1``).
        subset: the subset the ensembles were scored on.
        ranking: one row per ensemble, best first: ``rank``, ``voting``, ``members`` (labels),
            ``weights`` (ints aligned with ``members``), ``n_members``, ``accuracy``, ``macro_f1``,
            and for the top rows ``gain`` / ``gain_low`` / ``gain_high`` (paired-bootstrap interval of
            the ranking metric minus the best single member's) and ``gain_excludes_zero``.
        best_single: the best single member's label and scores.
        greedy: the :class:`GreedyResult` per voting kind when ``method == "greedy"``.
        all_subsets: every subset's scores when ``method == "exhaustive"`` (see :func:`exhaustive_search`).
    """

    method: str
    metric: str
    subset: str
    ranking: pd.DataFrame
    best_single: dict
    greedy: dict[str, GreedyResult] = field(default_factory=dict)
    all_subsets: pd.DataFrame | None = None

    def to_dict(self, top: int = 10) -> dict:
        rows = self.ranking.head(top).to_dict(orient="records")
        return {"method": self.method, "metric": self.metric, "subset": self.subset, "best_single": self.best_single,
                "top": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]}


def _labels_of(preds: PredictionSet, weights: np.ndarray, voting: str) -> np.ndarray:
    keep = np.flatnonzero(weights > 0)
    return combine(preds.logits[keep], voting, weights[keep])[0]


def search_ensembles(preds: PredictionSet, *, metric: str = "accuracy", voting: tuple[str, ...] = ("soft", "hard"),
                     max_exhaustive: int = 12, n_steps: int = 50, top: int = 10, n_resamples: int = 1000,
                     seed: int = 0) -> EnsembleSearch:
    """Best ensembles of ``preds``' members, ranked by ``metric``, the top ``top`` with bootstrap intervals.

    Exhaustive over subsets when there are at most ``max_exhaustive`` members, else greedy selection
    (one ensemble per voting kind, ranked with every single member).
    """
    _require_labelled(preds)
    _check(metric, SEARCH_METRICS, "metric")
    labels = [m.label for m in preds.members]
    m = preds.n_members
    greedy: dict[str, GreedyResult] = {}
    all_subsets = None
    if m <= max_exhaustive:
        method = "exhaustive"
        all_subsets = exhaustive_search(preds, voting=voting, max_members=max_exhaustive)
        ranking = all_subsets.assign(weights=[[1] * len(ix) for ix in all_subsets["member_index"]])
    else:
        method = "greedy"
        rows = []
        for kind in voting:
            g = greedy_selection(preds, voting=kind, metric=metric, n_steps=n_steps)
            greedy[kind] = g
            chosen = g.chosen()
            rows.append({"voting": kind, "members": list(chosen), "weights": list(chosen.values()),
                         "member_index": tuple(labels.index(k) for k in chosen)})
        ranking = pd.DataFrame(rows + [{"voting": "single", "members": [lab], "weights": [1], "member_index": (i,)}
                                       for i, lab in enumerate(labels)])
        scores = [_score_row(preds, r) for r in ranking.to_dict(orient="records")]
        ranking["accuracy"] = [s[0] for s in scores]
        ranking["macro_f1"] = [s[1] for s in scores]
        ranking["n_members"] = [len(ix) for ix in ranking["member_index"]]
    singles_mask = ranking["n_members"] == 1
    single_rows = ranking[singles_mask].drop_duplicates("member_index")
    best_single_row = single_rows.sort_values(metric, ascending=False, kind="stable").iloc[0]
    best_i = best_single_row["member_index"][0]
    best_single = {"member": labels[best_i], "accuracy": float(best_single_row["accuracy"]),
                   "macro_f1": float(best_single_row["macro_f1"])}
    # Singles are the same under every voting kind: keep one row each, labelled "single".
    ranking = pd.concat([ranking[~singles_mask], single_rows.assign(voting="single")], ignore_index=True)
    ranking = ranking.sort_values([metric, "n_members"], ascending=[False, True], kind="stable", ignore_index=True)
    ranking.insert(0, "rank", np.arange(1, len(ranking) + 1))
    ranking = ranking[["rank", "voting", "members", "weights", "n_members", "accuracy", "macro_f1", "member_index"]]
    ranking = _add_gains(preds, ranking, best_i, metric, top, n_resamples, seed)
    return EnsembleSearch(method=method, metric=metric, subset=preds.subset, ranking=ranking, best_single=best_single,
                          greedy=greedy, all_subsets=all_subsets)


def _score_row(preds: PredictionSet, row: dict) -> tuple[float, float]:
    w = np.zeros(preds.n_members)
    w[list(row["member_index"])] = row["weights"]
    s = score(preds.labels, y_pred=_labels_of(preds, w, "soft" if row["voting"] == "single" else row["voting"]))
    return s["accuracy"], s["macro_f1"]


def _add_gains(preds, ranking, best_i, metric, top, n_resamples, seed) -> pd.DataFrame:
    reference = np.argmax(preds.logits[best_i], axis=1)
    gains = []
    for r in ranking.head(top).to_dict(orient="records"):
        w = np.zeros(preds.n_members)
        w[list(r["member_index"])] = r["weights"]
        pred = _labels_of(preds, w, "soft" if r["voting"] == "single" else r["voting"])
        res = paired_bootstrap(preds.labels, pred, reference, metric=metric, n_classes=preds.n_classes,
                               n_resamples=n_resamples, seed=seed)
        gains.append((res.diff, *res.diff_range, res.excludes_zero))
    pad = [(np.nan, np.nan, np.nan, None)] * (len(ranking) - len(gains))
    g = pd.DataFrame(gains + pad, columns=["gain", "gain_low", "gain_high", "gain_excludes_zero"])
    return pd.concat([ranking.reset_index(drop=True), g], axis=1)
