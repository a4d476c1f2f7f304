"""Per-fold confusion matrices and confidences: computed by the engine (a script gets the studio's numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import compare_folds, fold_confidences, fold_confusions

pytestmark = pytest.mark.slow  # reads the tiny study trained once per test run


def test_fold_confusions_agree_with_the_fold_comparison(tiny_study):
    run_dir = tiny_study.run_dirs[0]
    for tta in ("mean", "max"):
        matrices = fold_confusions(run_dir, tta=tta)
        table = compare_folds(run_dir, tta=tta).oof.set_index("fold")
        assert sorted(matrices) == [0, 1]
        for fold, matrix in matrices.items():
            assert matrix.shape == (10, 10) and matrix.sum() == table.at[fold, "n"]
            assert np.trace(matrix) / matrix.sum() == pytest.approx(table.at[fold, "accuracy"])


def test_fold_confidences_are_each_fold_models_top_probability(tiny_study):
    frame = fold_confidences(tiny_study.run_dirs[0], "holdout", views=["identity"])
    assert list(frame.columns) == ["fold0", "fold1"] and frame.index.name == "sample_id"
    assert ((frame >= 0.1 - 1e-6) & (frame <= 1.0 + 1e-6)).all().all()  # 10 classes: the top share is >= 1/10
