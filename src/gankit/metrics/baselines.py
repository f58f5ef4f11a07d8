"""Real-vs-real FID at N images per side, the floor a GAN's FID at that N is read against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gankit.data import load_cifar10
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import FeatureExtractor
from gankit.metrics.protocol import PROTOCOL_METHOD


def baselines(ext: FeatureExtractor, data_dir: str | Path | None, n: int,
              seed: int = 0) -> dict[str, Any]:
    """Disjoint random halves: train A vs train B, test A vs test B, train A vs test A."""
    rng = np.random.default_rng(seed)
    stats = {}
    for split in ("train", "test"):
        images, _ = load_cifar10(data_dir, split)
        idx = rng.permutation(len(images))[: 2 * n]
        x = images[idx].permute(0, 2, 3, 1).numpy()
        feats = ext(x, progress=True)
        stats[split] = (Stats.from_features(feats[:n]), Stats.from_features(feats[n:]))
    return {
        "n": n, "seed": seed, **ext.describe(),
        "train_vs_train": fid_from_stats(*stats["train"], PROTOCOL_METHOD),
        "test_vs_test": fid_from_stats(*stats["test"], PROTOCOL_METHOD),
        "train_vs_test": fid_from_stats(stats["train"][0], stats["test"][0], PROTOCOL_METHOD),
    }
