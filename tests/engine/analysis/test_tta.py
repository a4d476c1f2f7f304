import numpy as np
import pytest

from engine.analysis.metrics import softmax
from engine.analysis.tta import TTA_MODES, merge_views
from engine.errors import AnalysisError


def test_merge_modes_hand_worked():
    logits = np.log(np.array([[[0.7, 0.2, 0.1]], [[0.1, 0.6, 0.3]]]))  # two views of one sample
    p = np.exp(logits)
    np.testing.assert_allclose(np.exp(merge_views(logits, "mean")), p.mean(axis=0))
    g = np.sqrt(p[0] * p[1])
    np.testing.assert_allclose(np.exp(merge_views(logits, "geometric")), g / g.sum(axis=-1, keepdims=True))
    mx = p.max(axis=0)
    np.testing.assert_allclose(np.exp(merge_views(logits, "max")), mx / mx.sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(np.exp(merge_views(logits, "logit_mean")), softmax(logits.mean(axis=0)))


@pytest.mark.parametrize("mode", TTA_MODES)
def test_one_view_merges_to_itself_and_output_is_normalised(mode):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=5, size=(1, 2, 30, 4))  # (views, members, samples, classes)
    np.testing.assert_allclose(np.exp(merge_views(logits, mode)), softmax(logits[0]), rtol=1e-10)
    many = rng.normal(scale=50, size=(3, 30, 4))
    merged = merge_views(many, mode)
    assert np.all(np.isfinite(merged))
    np.testing.assert_allclose(np.exp(merged).sum(axis=-1), 1.0)


def test_geometric_equals_logit_mean_for_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 20, 3))
    np.testing.assert_allclose(merge_views(logits, "geometric"), merge_views(logits, "logit_mean"), atol=1e-12)


def test_unknown_mode_is_refused():
    with pytest.raises(AnalysisError, match="merge mode must be a str among"):
        merge_views(np.zeros((2, 3, 2)), "median")
