import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from gankit.errors import GankitError
from gankit.metrics.fid import Stats, fid_from_stats, frechet_distance, kid
from gankit.metrics.inception import preprocess, resize_tf, resolve_weights
from gankit.metrics.sources import compare, load_source, source_stats

from .stubs import StubExtractor


def test_closed_form_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    d1, d2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (d1 + d2 - 2 * np.sqrt(d1 * d2)).sum()
    for method in ("scipy", "eigh"):
        got = frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2), method=method)
        assert got == pytest.approx(expected, rel=1e-9)


def test_identity_symmetry_and_eigh_matches_scipy():
    rng = np.random.default_rng(1)
    a = Stats.from_features(rng.normal(size=(500, 40)))
    b = Stats.from_features(rng.normal(size=(400, 40)) * 1.3 + 0.2)
    assert fid_from_stats(a, a) == pytest.approx(0.0, abs=1e-6)
    ab, ba = fid_from_stats(a, b), fid_from_stats(b, a)
    assert ab == pytest.approx(ba, rel=1e-8) and ab > 0.5
    assert fid_from_stats(a, b, method="eigh") == pytest.approx(ab, rel=1e-8)


def test_singular_covariances_give_finite_value_and_warning():
    rng = np.random.default_rng(2)
    a = Stats.from_features(rng.normal(size=(10, 50)))  # rank 9 covariance in 50-d
    b = Stats.from_features(rng.normal(size=(10, 50)) + 1)
    with pytest.warns(RuntimeWarning, match="singular"):
        val = fid_from_stats(a, b)
    assert np.isfinite(val) and val > 0
    z = np.zeros((3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(frechet_distance(np.zeros(3), z, np.ones(3), z))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(GankitError, match="differ in shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_near_zero_on_same_set_and_positive_on_shift():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(600, 32))
    mean, _ = kid(f, f, n_subsets=20, subset_size=200)
    shifted, _ = kid(f, f + 0.5, n_subsets=20, subset_size=200)
    # subsets of one set overlap, which pulls the estimate slightly below 0
    assert abs(mean) < 0.05 * shifted and shifted > 0.5
    whole, std = kid(f[:300], f[300:], n_subsets=20, subset_size=300)
    assert abs(whole) < 0.05 * shifted and std < 1e-9  # one subset covers all


def test_tf_resize_samples_input_at_i_times_scale():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    y = resize_tf(x, size=8)  # scale 0.5: output j samples input 0.5 j, clamped at the border
    np.testing.assert_allclose(y[0, 0, 0].numpy(), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3], atol=1e-5)
    img = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    for mode in ("tf", "pytorch-fid"):
        p = preprocess(img, mode)
        assert p.shape == (1, 3, 299, 299) and p.max() <= 1.0 + 1e-6 and p.min() >= 0.99


def test_every_source_kind(tmp_path, fake_cifar):
    rng = np.random.default_rng(4)
    imgs = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs)
    np.save(tmp_path / "a.npy", imgs)
    (tmp_path / "pngs").mkdir()
    for i, im in enumerate(imgs[:60]):
        Image.fromarray(im).save(tmp_path / "pngs" / f"{i}.png")
    ext = StubExtractor()
    a = load_source(str(tmp_path / "a.npz"))
    assert compare(a, load_source(str(tmp_path / "a.npy")), ext)["fid"] == pytest.approx(0, abs=1e-6)
    folder = load_source(str(tmp_path / "pngs"))
    assert folder.images.shape == (60, 32, 32, 3)
    st, _ = source_stats(a, ext)
    st.save(tmp_path / "stats.npz")
    rec = compare(load_source(str(tmp_path / "stats.npz")), a, ext)
    assert rec["fid"] == pytest.approx(0, abs=1e-6) and rec["n_a"] == 300
    c = load_source("cifar10:test[0:200]", data_dir=fake_cifar)
    assert c.images.shape == (200, 32, 32, 3)
    r = compare(c, load_source("cifar10:train[100:300]", data_dir=fake_cifar), ext, with_kid=True)
    assert {"fid", "kid_mean", "kid_std", "mode", "inception_sha256"} <= set(r)
    same = compare(a, load_source(str(tmp_path / "a.npy")), ext, with_pr=True)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["pr_n_fake"] == same["pr_n_real"] == 300
    with pytest.raises(GankitError, match="need images"):
        compare(load_source(str(tmp_path / "stats.npz")), a, ext, with_pr=True)


@pytest.mark.parametrize("make, match", [
    (lambda p: np.savez(p / "x.npz", images=np.zeros((4, 32, 32, 3), np.float32)), "uint8"),
    (lambda p: np.savez(p / "x.npz", images=np.zeros((4, 32, 32, 5), np.uint8)), "N x H x W x 3"),
    (lambda p: np.savez(p / "x.npz", a=np.zeros(3), b=np.zeros(3)), "no 'images'"),
    (lambda p: (p / "x.npz").write_bytes(b"junk"), "cannot read"),
])
def test_bad_inputs(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(GankitError, match=match):
        load_source(str(tmp_path / "x.npz"))


def test_missing_sources_and_weights(tmp_path, monkeypatch):
    with pytest.raises(GankitError, match="not found"):
        load_source(str(tmp_path / "nope.npz"))
    with pytest.raises(GankitError, match="bad dataset .cifar10:valid"):
        load_source("cifar10:valid")
    with pytest.raises(GankitError, match="GANKIT_INCEPTION"):
        resolve_weights(tmp_path / "missing.pt")
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)
    monkeypatch.setattr("gankit.metrics.inception.WEIGHTS_URL", "http://nonexistent.invalid/w")
    with pytest.raises(GankitError, match="--inception"):
        resolve_weights(None)


def test_scipy_reference_sqrtm_agrees_on_random_spd():
    rng = np.random.default_rng(5)
    m1, m2 = rng.normal(size=(30, 30)), rng.normal(size=(30, 30))
    s1, s2 = m1 @ m1.T, m2 @ m2.T
    tr = np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    fd = frechet_distance(np.zeros(30), s1, np.zeros(30), s2, method="eigh")
    assert fd == pytest.approx(np.trace(s1) + np.trace(s2) - 2 * tr, rel=1e-7)


def test_stats_cache_is_keyed_by_the_pixels(tmp_path):
    """Statistics cached from one copy of CIFAR-10 are never reused for a different copy."""
    from .conftest import write_cifar

    a = write_cifar(tmp_path / "a", n_train=50000, n_test=10000, seed=1)
    b = write_cifar(tmp_path / "b", n_train=50000, n_test=10000, seed=2)
    ext = StubExtractor()
    sa = load_source("cifar10:test[0:500]", data_dir=a)
    stats_a, feats = source_stats(sa, ext)
    assert feats is not None  # computed, then cached
    assert source_stats(load_source("cifar10:test[0:500]", data_dir=a), ext)[1] is None  # hit
    sb = load_source("cifar10:test[0:500]", data_dir=b)
    stats_b, feats_b = source_stats(sb, ext)
    assert feats_b is not None and sb.cache_key != sa.cache_key  # a miss, not a's numbers
    direct = Stats.from_features(ext(sb.images))
    assert fid_from_stats(stats_b, direct) == pytest.approx(0.0, abs=1e-6)
    assert fid_from_stats(stats_a, stats_b) > 1.0


def test_dataset_features_are_cached_once_kid_pr_or_intra_need_them(tmp_path, fake_cifar):
    """``--intra`` / ``--kid`` / ``--pr`` against a dataset embed it once: the second compare
    embeds only the other side and gives the same record; the statistics cache is filled from
    the same features; an array source (generated samples) is never cached."""
    from gankit.metrics.sources import compare, features_cache_path, stats_cache_path

    ext = StubExtractor()
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "fake.npz", images=rng.integers(0, 256, (40, 32, 32, 3), np.uint8),
             labels=np.arange(40) % 10)
    recs = []
    for _ in range(2):
        ext.count = 0
        a = load_source(str(tmp_path / "fake.npz"))
        b = load_source("cifar10:test[0:60]", data_dir=fake_cifar)
        rec = compare(a, b, ext, with_kid=True, with_intra=True)
        recs.append((ext.count, {k: v for k, v in rec.items() if k != "seconds"}))
    assert [c for c, _ in recs] == [100, 40]  # 40 + 60, then the 40 generated alone
    assert recs[0][1] == recs[1][1]
    cached = np.load(features_cache_path(b.cache_key, ext))
    assert cached.dtype == np.float32
    np.testing.assert_array_equal(cached, ext(b.images))
    assert fid_from_stats(Stats.load(stats_cache_path(b.cache_key, ext)),
                          Stats.from_features(ext(b.images))) == pytest.approx(0.0, abs=1e-9)
    assert a.cache_key is None
