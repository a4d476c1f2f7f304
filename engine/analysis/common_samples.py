"""Two runs that do not share a split, compared on the samples both score: a run trained with label
overrides against the same config without them.

Excluding samples changes the manifest, so the relaunched run draws another split: its OOF set and its
holdout are not the first run's. What both runs still have is an out-of-sample prediction for most
samples. :func:`compare_on_common_samples` keeps the samples both runs scored out of sample *with the
same label* (a relabelled sample is left out: scoring it against either label would decide the answer),
and compares the two there, each difference with its paired-bootstrap interval.

``subset``: ``all`` (default) — each labelled sample's out-of-sample prediction in each run: by its OOF
fold model, or by the fold models' soft vote when it is in that run's holdout; ``oof``; ``holdout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis.compare import _differences
from engine.analysis.load import RunInfo, load_predictions, open_run, open_runs
from engine.analysis.metrics import score
from engine.analysis.tta import check_tta_mode
from engine.errors import AnalysisError, RunDamagedError

COMMON_SUBSETS = ("all", "oof", "holdout")
# Config fields that may differ between "the same config" with and without overrides.
_SAME_CONFIG_IGNORES = ("name", "device", "tta_views", "train.num_workers", "label_overrides")


def _out_of_sample(run: RunInfo, subset: str, views, tta: str) -> pd.DataFrame:
    """``sample_id``, ``label``, ``source`` (oof / holdout) and ``p_0 .. p_{K-1}`` of one run's labelled predictions."""
    frames = []
    for part in (("oof", "holdout") if subset == "all" else (subset,)):
        if not run.folds(part):
            continue
        preds = load_predictions(run, part, views=views).merge_tta(tta, views)
        if not preds.n_samples:
            continue
        proba = preds.proba().mean(axis=0)  # OOF: the one member; holdout: the fold models' soft vote
        frame = pd.DataFrame(proba, columns=[f"p_{k}" for k in range(proba.shape[1])])
        frame.insert(0, "source", part)
        frame.insert(0, "label", preds.labels)
        frame.insert(0, "sample_id", preds.sample_ids.astype(str))
        frames.append(frame)
    if not frames:
        raise AnalysisError(f"Run {run.run_id!r} has no labelled {subset} predictions yet (finish a fold first).")
    return pd.concat(frames, ignore_index=True)


@dataclass
class CommonSampleComparison:
    """Run ``a`` against run ``b`` on the samples both scored out of sample with the same label.

    Attributes:
        counts: ``n_a``, ``n_b`` (samples each run scored), ``common`` (compared), ``label_differs`` (scored by
            both, under different labels: relabelled), ``only_a``, ``only_b`` (e.g. excluded from ``b``).
        metrics: one row per run (``run``: a / b, ``run_id``, ``name``): accuracy, balanced accuracy, macro-F1,
            log loss, Brier, ECE on the common samples.
        differences: ``a - b`` per metric with its 95% paired-bootstrap interval (``diff_low`` / ``diff_high``).
    """

    run_a: str
    run_b: str
    subset: str
    counts: dict[str, int]
    metrics: pd.DataFrame
    differences: pd.DataFrame

    def to_dict(self) -> dict:
        from engine.analysis.compare import _frame_records

        return {"run_a": self.run_a, "run_b": self.run_b, "subset": self.subset, "counts": self.counts,
                "metrics": _frame_records(self.metrics), "differences": _frame_records(self.differences)}


def compare_on_common_samples(run_a: str | Path | RunInfo, run_b: str | Path | RunInfo, *, subset: str = "all",
                              views: Sequence[str] | None = None, tta: str = "mean", n_resamples: int = 1000,
                              seed: int = 0, workspace: str | Path | None = None) -> CommonSampleComparison:
    """Compare two runs of one dataset on the samples both scored out of sample with the same label."""
    if subset not in COMMON_SUBSETS:
        raise AnalysisError(f"The 'subset' parameter must be a str among {list(COMMON_SUBSETS)}. "
                            f"Got {subset!r} instead.")
    check_tta_mode(tta)
    a, b = open_runs([run_a, run_b], workspace=workspace)
    if a.classes != b.classes:
        raise AnalysisError(f"Runs {a.run_id!r} and {b.run_id!r} have different classes; they cannot be compared.")
    fa, fb = _out_of_sample(a, subset, views, tta), _out_of_sample(b, subset, views, tta)
    joined = fa.merge(fb, on="sample_id", suffixes=("_a", "_b"), how="inner", validate="one_to_one")
    same = (joined["label_a"] == joined["label_b"]).to_numpy()
    common = joined[same]
    counts = {"n_a": len(fa), "n_b": len(fb), "common": int(same.sum()), "label_differs": int((~same).sum()),
              "only_a": len(fa) - len(joined), "only_b": len(fb) - len(joined)}
    if common.empty:
        raise AnalysisError(f"Runs {a.run_id!r} and {b.run_id!r} share no sample scored out of sample with the same "
                            f"label ({counts}); they do not come from one dataset.")
    k = len(a.classes or []) or sum(c.startswith("p_") for c in fa.columns)
    y = common["label_a"].to_numpy().astype(np.int64)
    pa = common[[f"p_{i}_a" for i in range(k)]].to_numpy()
    pb = common[[f"p_{i}_b" for i in range(k)]].to_numpy()
    metrics = pd.DataFrame([{"run": "a", "run_id": a.run_id, "name": a.name, **score(y, proba=pa)},
                            {"run": "b", "run_id": b.run_id, "name": b.name, **score(y, proba=pb)}])
    differences = _differences(y, pa, pb, k, n_resamples=n_resamples, seed=seed,
                               metrics=("accuracy", "macro_f1", "log_loss"))
    return CommonSampleComparison(run_a=a.run_id, run_b=b.run_id, subset=subset, counts=counts, metrics=metrics,
                                  differences=differences)


def _config_key(run: RunInfo) -> str:
    flat = pd.json_normalize(run.config, sep=".").iloc[0].to_dict()
    kept = {k: v for k, v in flat.items() if not any(k == f or k.startswith(f + ".") for f in _SAME_CONFIG_IGNORES)}
    return repr(sorted(kept.items(), key=lambda kv: kv[0]))


def overrides_digest(run: RunInfo) -> str | None:
    """The digest of the label overrides a run trained with (None: the dataset's own labels)."""
    record = run.config.get("label_overrides") or {}
    return record.get("digest")


def find_override_pairs(runs: Sequence[str | Path | RunInfo], *, workspace: str | Path | None = None
                        ) -> list[tuple[RunInfo, RunInfo]]:
    """``(without, with)`` pairs: a run trained with label overrides, and a run of the same config (name, device,
    views and workers aside) trained without them — or with other overrides when none is without. Newest first.

    A damaged run (:class:`~engine.errors.RunDamagedError`) pairs with nothing: the listings name it already.
    """
    infos = []
    for r in runs:
        try:
            infos.append(open_run(r, workspace=workspace))
        except RunDamagedError:
            continue
    groups: dict[str, list[RunInfo]] = {}
    for run in infos:
        groups.setdefault(_config_key(run), []).append(run)
    pairs = []
    for members in groups.values():
        for run in sorted(members, key=lambda r: r.run_id, reverse=True):
            digest = overrides_digest(run)
            if digest is None:
                continue
            others = [m for m in members if overrides_digest(m) != digest]
            plain = [m for m in others if overrides_digest(m) is None] or others
            if plain:
                pairs.append((max(plain, key=lambda r: r.run_id), run))
    return sorted(pairs, key=lambda p: p[1].run_id, reverse=True)
