"""Splits: stratified, group-aware, deterministic, with a holdout taken out first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.training.config import SplitConfig
from engine.training.splits import make_split


def manifest(counts: dict[str, int], groups_per_class: int | None = None) -> pd.DataFrame:
    rows = []
    for label, n in counts.items():
        for i in range(n):
            group = f"{label}-p{i % groups_per_class}" if groups_per_class else None
            rows.append({"sample_id": f"{label}/{i:03d}.png", "label": label, "group": group})
    return pd.DataFrame(rows)


def test_stratified_folds_and_holdout():
    m = manifest({"a": 50, "b": 30, "c": 20})
    split = make_split(m, SplitConfig(k=5, seed=0, holdout_fraction=0.2))
    assert list(split.columns) == ["sample_id", "fold", "is_holdout"]
    assert split["sample_id"].tolist() == m["sample_id"].tolist()
    assert split["is_holdout"].sum() == 20 and (split.loc[split["is_holdout"], "fold"] == -1).all()
    table = pd.crosstab(split["fold"], m["label"])
    assert set(table.index) == {-1, 0, 1, 2, 3, 4}
    assert table.loc[-1].tolist() == [10, 6, 4]  # holdout stratified
    assert table.drop(index=-1).max().sub(table.drop(index=-1).min()).max() <= 1  # folds balanced per class


def test_same_inputs_same_split_whatever_the_row_order():
    m = manifest({"a": 40, "b": 25})
    cfg = SplitConfig(k=4, seed=7, holdout_fraction=0.1)
    first = make_split(m, cfg)
    shuffled = m.sample(frac=1.0, random_state=3).reset_index(drop=True)
    second = make_split(shuffled, cfg).set_index("sample_id").loc[first["sample_id"]].reset_index()
    pd.testing.assert_frame_equal(first, second)
    assert not make_split(m, cfg.model_copy(update={"seed": 8}))["fold"].equals(first["fold"])


def test_groups_never_straddle_folds_or_the_holdout():
    m = manifest({"a": 60, "b": 40}, groups_per_class=10)
    split = make_split(m, SplitConfig(k=3, seed=0, holdout_fraction=0.2))
    per_group = split.assign(group=m["group"]).groupby("group")["fold"].nunique()
    assert (per_group == 1).all()
    assert split["is_holdout"].any()


def test_named_group_column_must_exist():
    m = manifest({"a": 30, "b": 30}).assign(patient=lambda f: [f"p{i % 7}" for i in range(len(f))])
    split = make_split(m, SplitConfig(k=3, group_column="patient", holdout_fraction=0.0))
    assert (split.assign(p=m["patient"]).groupby("p")["fold"].nunique() == 1).all()
    assert not split["is_holdout"].any()
    with pytest.raises(ConfigError, match="'split.group_column'.*'person'"):
        make_split(m, SplitConfig(k=3, group_column="person"))


def test_k_larger_than_a_class_names_the_class():
    m = manifest({"cat": 40, "dog": 3})
    with pytest.raises(ConfigError, match=r"Class 'dog' has 3 sample\(s\), fewer than the 5 folds.*at most 3 folds"):
        make_split(m, SplitConfig(k=5))


def test_k_larger_than_the_groups_of_a_class_names_the_class():
    m = manifest({"cat": 40, "dog": 40}, groups_per_class=2)
    with pytest.raises(ConfigError, match=r"Class '(cat|dog)' has 2 group\(s\)"):
        make_split(m, SplitConfig(k=3))


def test_holdout_that_leaves_too_few_names_the_class():
    m = manifest({"cat": 100, "dog": 6})
    with pytest.raises(ConfigError, match=r"holdout_fraction.*Class 'dog' has \d sample\(s\) after the holdout"):
        make_split(m, SplitConfig(k=5, holdout_fraction=0.5))


def test_every_sample_gets_exactly_one_fold():
    m = manifest({"a": 33, "b": 17, "c": 9})
    split = make_split(m, SplitConfig(k=3, holdout_fraction=0.1))
    assert split["sample_id"].is_unique
    assert np.isin(split["fold"], [-1, 0, 1, 2]).all()
    assert ((split["fold"] == -1) == split["is_holdout"]).all()


def test_one_class_is_refused_before_any_fold_is_drawn():
    with pytest.raises(ConfigError, match=r"only class 'cat' with sample\(s\); a classifier needs at least two"):
        make_split(manifest({"cat": 40}), SplitConfig(k=5, holdout_fraction=0.0))


def test_one_class_left_after_the_holdout_is_named():
    from engine.data.manifest import class_problems

    left = pd.Series({"cat": 36, "dog": 0})  # what a holdout that took every dog would leave
    problems = class_problems(left, 3, unit="sample(s)", stage=" after the holdout")
    assert [p.kind for p in problems] == ["one_class", "small_class"]
    assert "only class 'cat' with sample(s) after the holdout" in problems[0].message
    assert "Class 'dog' has 0 sample(s) after the holdout" in problems[1].message
