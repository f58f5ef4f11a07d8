"""The reporting protocol: draws, seeds and the best-checkpoint split, checked by hand."""

import math

import numpy as np
import pytest
import torch

from gankit.errors import GankitError
from gankit.generate import sample_images
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.protocol import SAMPLE_SEED, check_disjoint, draw_fids, fmt, summarize

from .stubs import StubExtractor


def test_summarize_matches_a_hand_computation():
    x = [31.0, 33.5, 30.25, 35.0, 32.0]
    mean = sum(x) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / 4)
    half = 2.7764451051977987 * std / math.sqrt(5)  # t(0.975, 4) from a table
    s = summarize(x)
    assert s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std)
    assert s["ci95"] == pytest.approx([mean - half, mean + half])
    assert s["n"] == 5 and fmt(s) == f"{mean:.2f} ± {std:.2f}"
    one = summarize([40.0])
    assert one["std"] is None and one["ci95"] is None and fmt(one) == "40.00"


@pytest.mark.parametrize("select, report", [
    ("test[0:1000]", "test[0:1000]"), ("test[500:1500]", "test[0:1000]"),
    ("cifar10:test[:2000]", "test[1000:2000]"), ("test", "test[9000:9100]"),
])
def test_overlapping_selection_split_is_an_error(select, report):
    with pytest.raises(GankitError, match="share images"):
        check_disjoint(select, report)


@pytest.mark.parametrize("select, report", [
    ("test[5000:6000]", "test[0:1000]"), ("test[1000:2000]", "test[0:1000]"),
    ("train[0:1000]", "test[0:1000]"), ("stats.npz", "test[0:1000]"),
])
def test_disjoint_selection_splits_pass(select, report):
    check_disjoint(select, report)


def test_draws_are_independent_sample_sets():
    """Draw d is FID of sample_images(seed 2024 + d): recomputed here by hand."""
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(8, 3 * 32 * 32), torch.nn.Tanh(),
                            torch.nn.Unflatten(1, (3, 32, 32)))
    g.latent_dim = 8
    ext = StubExtractor()
    rng = np.random.default_rng(0)
    ref = Stats.from_features(ext(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)))
    got = draw_fids(g, ext, ref, 100, 3)
    want = [fid_from_stats(Stats.from_features(ext(sample_images(g, 100, SAMPLE_SEED + d))), ref)
            for d in range(3)]
    assert got == pytest.approx(want) and len(set(got)) == 3
