"""Two runs that do not share their samples, compared on the ones both scored with the same label; and the
pairs of runs trained with and without label overrides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.analysis.common_samples import compare_on_common_samples, find_override_pairs
from engine.analysis.load import load_predictions
from engine.analysis.metrics import score
from engine.errors import AnalysisError


def _edit_predictions(run_dir, drop=(), relabel=None):
    """Drop some samples from every prediction file of a run and give others another label."""
    for path in (run_dir / "predictions").glob("fold*_*.parquet"):
        frame = pd.read_parquet(path)
        frame = frame[~frame["sample_id"].isin(drop)]
        for sid, label in (relabel or {}).items():
            frame.loc[frame["sample_id"] == sid, "label_index"] = label
        frame.to_parquet(path)


def _out_of_sample(run) -> tuple[pd.Series, pd.DataFrame]:
    """(label, probabilities) per sample id: OOF by its fold model, holdout by the fold models' mean."""
    oof = load_predictions(run, "oof").merge_tta("mean")
    hold = load_predictions(run, "holdout").merge_tta("mean")
    labels = pd.concat([pd.Series(oof.labels, index=oof.sample_ids), pd.Series(hold.labels, index=hold.sample_ids)])
    proba = pd.concat([pd.DataFrame(oof.proba()[0], index=oof.sample_ids),
                       pd.DataFrame(hold.proba().mean(axis=0), index=hold.sample_ids)])
    return labels, proba


def test_runs_are_compared_on_common_samples_with_the_same_label(make_run):
    a = make_run("a", seed=1)
    b = make_run("b", seed=2)
    labels_a, proba_a = _out_of_sample(a)
    relabel = {s: int((labels_a[s] + 1) % 3) for s in ("s0003", "s0075")}  # an OOF and a holdout sample
    _edit_predictions(b, drop=["s0001", "s0002", "s0070"], relabel=relabel)  # s0070: a holdout sample
    labels_b, proba_b = _out_of_sample(b)
    result = compare_on_common_samples(b, a)
    assert result.counts == {"n_a": 77, "n_b": 80, "common": 75, "label_differs": 2, "only_a": 0, "only_b": 3}
    keep = [s for s in labels_b.index if s in labels_a.index and labels_a[s] == labels_b[s]]
    y = labels_a.loc[keep].to_numpy()
    metrics = result.metrics.set_index("run")
    assert metrics.at["a", "run_id"] == "b" and metrics.at["b", "run_id"] == "a"
    for run, proba in (("a", proba_b), ("b", proba_a)):
        expected = score(y, proba=proba.loc[keep].to_numpy())
        assert metrics.at[run, "accuracy"] == pytest.approx(expected["accuracy"])
        assert metrics.at[run, "log_loss"] == pytest.approx(expected["log_loss"])
    diffs = result.differences.set_index("metric")
    assert list(diffs.index) == ["accuracy", "macro_f1", "log_loss"]
    assert diffs.at["accuracy", "diff"] == pytest.approx(metrics.at["a", "accuracy"] - metrics.at["b", "accuracy"])
    assert diffs.at["accuracy", "diff_low"] <= diffs.at["accuracy", "diff"] <= diffs.at["accuracy", "diff_high"]
    oof_only = compare_on_common_samples(b, a, subset="oof")
    assert (oof_only.counts["n_a"], oof_only.counts["n_b"], oof_only.counts["label_differs"]) == (58, 60, 1)


def test_bad_subset_and_unrelated_runs_are_refused(make_run):
    a = make_run("a")
    b = make_run("b", classes=["x", "y", "z"])
    with pytest.raises(AnalysisError, match=r"The 'subset' parameter must be a str among \['all', 'oof', 'holdout'\]"):
        compare_on_common_samples(a, a, subset="test")
    with pytest.raises(AnalysisError, match="different classes"):
        compare_on_common_samples(a, b)


def _set_overrides(run_dir, record, name=None):
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["label_overrides"] = record
    if name:
        config["name"] = name
    path.write_text(yaml.safe_dump(config))


def test_override_pairs_match_the_same_config_without_overrides(make_run):
    plain = make_run("20260101-a", seed=1)
    other_model = make_run("20260102-b", model="test_vit")
    with_ovr = make_run("20260103-c", seed=2)
    _set_overrides(with_ovr, {"digest": "abc", "excluded": ["s0001"], "relabelled": {}}, name="c +overrides")
    _set_overrides(other_model, {"digest": "abc", "excluded": ["s0001"], "relabelled": {}})
    pairs = find_override_pairs([plain, other_model, with_ovr])
    assert [(a.run_id, b.run_id) for a, b in pairs] == [("20260101-a", "20260103-c")]
    assert np.all([b.config["label_overrides"]["digest"] == "abc" for _, b in pairs])
