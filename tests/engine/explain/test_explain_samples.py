"""Choosing the images to explain from one model's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.explain.samples import list_sample_sources, select_samples, softmax

# 6 samples, 3 classes: rows 1 and 4 are wrong (row 4 confidently), row 2 is the least confident.
LOGITS = np.array([[5, 0, 0], [0, 1.2, 0], [0.1, 0, 0.05], [0, 0, 4], [0, 0, 6], [3, 0, 0]], dtype=np.float32)
LABELS = np.array([0, 2, 0, 2, 1, 0])


def test_misclassified_most_confident_first():
    assert select_samples(LOGITS, LABELS, source="misclassified", n=5).tolist() == [4, 1]
    assert select_samples(LOGITS, LABELS, source="misclassified", n=1).tolist() == [4]


def test_least_confident_first():
    order = select_samples(LOGITS, LABELS, source="least_confident", n=3)
    assert order[0] == 2
    conf = softmax(LOGITS).max(axis=1)
    assert (np.diff(conf[order]) >= 0).all()


def test_random_per_class_covers_every_class_and_is_seeded():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4))
    picked = select_samples(logits, labels, source="random_per_class", n=8, seed=3)
    assert labels[picked].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert len(set(picked.tolist())) == 8
    assert select_samples(logits, labels, source="random_per_class", n=8, seed=3).tolist() == picked.tolist()
    assert select_samples(logits, labels, source="random_per_class", n=8, seed=4).tolist() != picked.tolist()
    assert len(select_samples(logits, labels, source="random_per_class", n=6, seed=3)) == 6


def test_nothing_to_show_is_an_empty_selection():
    right = np.eye(3, dtype=np.float32) * 5
    assert select_samples(right, np.arange(3), source="misclassified", n=4).size == 0
    assert select_samples(np.zeros((0, 3)), np.zeros(0, int), source="least_confident", n=4).size == 0


def test_bad_arguments_are_named():
    assert "misclassified" in list_sample_sources()
    with pytest.raises(ConfigError, match=r"'source' parameter must be a str among \['misclassified'"):
        select_samples(LOGITS, LABELS, source="worst", n=3)
    with pytest.raises(ConfigError, match="'n' parameter"):
        select_samples(LOGITS, LABELS, source="misclassified", n=0)
    with pytest.raises(ConfigError, match=r"logits \(N, C\) and labels \(N,\)"):
        select_samples(LOGITS, LABELS[:3], source="misclassified", n=3)
