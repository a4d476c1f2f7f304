import numpy as np
import pytest

from engine.analysis.calibration import apply_temperature, confidence_histogram, entropy_histogram, fit_temperature
from engine.analysis.metrics import expected_calibration_error, softmax


def test_fit_temperature_recovers_an_overconfidence_factor():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=2.0, size=(20000, 5))
    p = softmax(true_logits)
    y = (p.cumsum(axis=1) > rng.random((20000, 1))).argmax(axis=1)  # labels drawn from the true probabilities
    t = fit_temperature(true_logits * 2.5, y)  # a model 2.5x overconfident
    assert t == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(y, softmax(true_logits * 2.5))
    after = expected_calibration_error(y, np.exp(apply_temperature(true_logits * 2.5, t)))
    assert after < before / 3
    # argmax (accuracy) is unchanged by the temperature
    np.testing.assert_array_equal(apply_temperature(true_logits, t).argmax(1), true_logits.argmax(1))


def test_histograms_cover_their_ranges():
    p = softmax(np.random.default_rng(1).normal(size=(100, 4)))
    conf = confidence_histogram(p)
    ent = entropy_histogram(p, bins=10)
    assert conf["count"].sum() == 100 and ent["count"].sum() == 100
    assert conf["lower"].iloc[0] == 0 and conf["upper"].iloc[-1] == 1
    assert ent["upper"].iloc[-1] == pytest.approx(np.log(4))
