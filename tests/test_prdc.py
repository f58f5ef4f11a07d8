"""Precision/recall and density/coverage on cases whose answer is known in closed form."""

import numpy as np
import pytest

from gankit.metrics.prdc import kth_neighbour_radii, prdc


def _pts(n, seed, shift=0.0, dim=8):
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_radii_are_the_kth_other_neighbour():
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    import torch

    # k=2: for 0 the others are at 1, 3, 6, 10 -> 3; for 3 they are at 2, 3, 3, 7 -> 3
    assert kth_neighbour_radii(torch.tensor(x), 2).tolist() == [3.0, 2.0, 3.0, 4.0, 7.0]


def test_identical_sets_score_one():
    x = _pts(300, 0)
    m = prdc(x, x.copy())
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] >= 1.0  # each fake sits at the centre of its own real ball, at least


def test_disjoint_sets_score_zero():
    m = prdc(_pts(200, 0), _pts(200, 1, shift=100.0))
    assert m == {**m, "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_subset_is_precise_but_not_diverse():
    real = _pts(400, 0)
    fake = real[:100]  # a quarter of the real points, exactly
    m = prdc(real, fake)
    assert m["precision"] == 1.0 and m["density"] >= 1.0
    assert 0.25 <= m["coverage"] < 0.9 and m["recall"] < 0.9
    # and the other way round: reals inside fake balls are all recalled, precision drops
    m2 = prdc(fake, real)
    assert m2["recall"] == 1.0 and m2["precision"] < 0.9


def test_mode_dropping_lowers_recall_and_coverage_not_precision():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 8)) * 20
    real = np.concatenate([c + rng.normal(size=(150, 8)) for c in centres])
    fake = np.concatenate([c + rng.normal(size=(300, 8)) for c in centres[:2]])
    m = prdc(real, fake)
    assert m["precision"] > 0.8 and m["recall"] == pytest.approx(0.5, abs=0.05)
    assert m["coverage"] == pytest.approx(0.5, abs=0.05)
    assert m["pr_n_real"] == 600 and m["pr_n_fake"] == 600 and m["pr_k"] == 3
