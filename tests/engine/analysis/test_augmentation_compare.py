"""Runs that differ only in their augmentation pipeline (a `vary: {augment: [none, medium]}` study, trained):
found as a group, compared on OOF with bootstrap intervals and per-class gains; other runs are refused."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import compare_augmentation, find_augmentation_groups, open_run, score
from engine.analysis.compare import augmentation_label, pipeline_transforms
from engine.analysis.load import load_predictions
from engine.errors import AnalysisError


def test_groups_hold_runs_that_differ_only_in_augment(augment_study, tiny_study):
    runs = [open_run(p) for p in [*tiny_study.run_dirs, *augment_study.run_dirs]]
    groups = find_augmentation_groups(runs)
    assert [[r.path for r in g] for g in groups] == [list(augment_study.run_dirs)]  # none first: fewer transforms
    assert [augmentation_label(r.config) for r in groups[0]] == ["none", "medium"]


def test_comparison_against_the_lighter_pipeline(augment_study):
    none_dir, medium_dir = augment_study.run_dirs
    result = compare_augmentation(list(augment_study.run_dirs), n_resamples=300)
    assert result.baseline_run_id == none_dir.name
    runs = result.runs.set_index("augment")
    assert runs.at["none", "transforms"] == ["Resize"]
    assert runs.at["medium", "added"] == pipeline_transforms(result.specs[medium_dir.name])
    assert runs.at["medium", "removed"] == ["Resize"]

    # OOF metrics are the runs' own (identity and hflip merged by mean), and the differences are medium - none
    oof = load_predictions(list(augment_study.run_dirs), "oof").merge_tta("mean")
    proba = oof.proba()
    metrics = result.metrics.set_index(["augment", "subset"])
    for i, label in enumerate(["none", "medium"]):
        assert metrics.at[(label, "oof"), "macro_f1"] == pytest.approx(score(oof.labels, proba=proba[i])["macro_f1"])
    assert set(result.metrics["subset"]) == {"oof", "holdout"}
    diffs = result.differences.set_index("metric")
    for metric in ("accuracy", "macro_f1", "log_loss"):
        gain = metrics.at[("medium", "oof"), metric] - metrics.at[("none", "oof"), metric]
        assert diffs.at[metric, "diff"] == pytest.approx(gain)
        assert diffs.at[metric, "diff_low"] <= diffs.at[metric, "diff"] <= diffs.at[metric, "diff_high"]

    # per class: recall gain = (fixed - broken) / support, with an interval around it
    per_class = result.per_class
    assert len(per_class) == len(oof.classes) and set(per_class["run_id"]) == {medium_dir.name}
    np.testing.assert_allclose(per_class["diff"], (per_class["fixed"] - per_class["broken"]) / per_class["support"])
    np.testing.assert_allclose(per_class["diff"], per_class["recall"] - per_class["recall_baseline"])
    assert (per_class["diff_low"] <= per_class["diff"] + 1e-12).all()
    assert (per_class["diff"] <= per_class["diff_high"] + 1e-12).all()
    assert result.to_dict()["baseline_run_id"] == none_dir.name


def test_the_baseline_may_be_chosen_and_other_runs_are_refused(augment_study, tiny_study):
    none_dir, medium_dir = augment_study.run_dirs
    result = compare_augmentation(list(augment_study.run_dirs), baseline=medium_dir.name, n_resamples=100)
    assert result.baseline_run_id == medium_dir.name and list(result.differences["augment"].unique()) == ["none"]
    with pytest.raises(AnalysisError, match="baseline"):
        compare_augmentation(list(augment_study.run_dirs), baseline="nope", n_resamples=100)
    with pytest.raises(AnalysisError, match="do not differ only in their augmentation pipeline"):
        compare_augmentation(list(tiny_study.run_dirs))
