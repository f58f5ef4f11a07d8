"""FID during training: reference statistics computed once (cached), fake side each time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gankit.config import Config
from gankit.generate import sample_images
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import FeatureExtractor
from gankit.metrics.sources import load_source, source_stats


class TrainingFID:
    def __init__(self, cfg: Config, data_dir: str | Path | None, inception: str | Path | None,
                 seed: int = 12345, extractor: FeatureExtractor | None = None) -> None:
        t = cfg.train
        self.n, self.seed = t.fid_n, seed
        self.ref_spec = t.fid_ref if t.fid_ref.startswith("cifar10:") else f"cifar10:{t.fid_ref}"
        self.ext = extractor or FeatureExtractor(inception, mode=t.fid_mode)
        self.ref: Stats = source_stats(load_source(self.ref_spec, data_dir=data_dir), self.ext,
                                       progress=True)[0]

    def __call__(self, g: torch.nn.Module) -> dict[str, Any]:
        # fp32 samples, as for reported numbers, and no global state touched (resume is exact)
        fake = Stats.from_features(self.ext(sample_images(g, self.n, self.seed)))
        return {"fid": fid_from_stats(fake, self.ref, method="eigh"), "n": self.n,
                "ref": self.ref_spec, "n_ref": self.ref.n, **self.ext.describe()}
