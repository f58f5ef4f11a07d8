"""FID by scipy.linalg.sqrtm vs by eigenvalues, on real Inception features (N = 500, 1000)."""
import time
import numpy as np
from gankit.data import load_images
from gankit.metrics.fid import Stats, frechet_distance
from gankit.metrics.inception import FeatureExtractor

ext = FeatureExtractor(None)
feats = {}
for spec in ["cifar10:test[0:1000]", "cifar10:test[1000:2000]", "cifar10:train[0:1000]"]:
    x = load_images(spec, progress=False).pixels
    feats[spec] = ext(x)
for n in (500, 1000):
    for a, b in [("cifar10:test[0:1000]", "cifar10:test[1000:2000]"), ("cifar10:test[0:1000]", "cifar10:train[0:1000]")]:
        sa, sb = Stats.from_features(feats[a][:n]), Stats.from_features(feats[b][:n])
        t = time.perf_counter(); s = frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma, method="scipy"); ts = time.perf_counter() - t
        t = time.perf_counter(); e = frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma, method="eigh"); te = time.perf_counter() - t
        print(f"N={n} {a} vs {b}: scipy {s:.6f} ({ts:.1f} s)  eigh {e:.6f} ({te:.1f} s)  diff {e - s:+.2e}", flush=True)
