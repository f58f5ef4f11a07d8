"""FID (and optionally precision/recall) during training: the reference side is computed once
(cached), the generated side each time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import Config
from gankit.data.sources import parse_cifar
from gankit.errors import GankitError
from gankit.generate import sample_images
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import FeatureExtractor
from gankit.metrics.sources import load_source, source_stats


def reference_spec(cfg: Config) -> str:
    """``train.fid_ref`` as a source: ``train`` / ``test`` / ``[a:b]`` slices name the training
    dataset (its split for CIFAR, the whole source otherwise); anything else is a source itself.
    """
    ref, dataset = cfg.train.fid_ref, cfg.data.dataset
    relative = ref.split("[")[0] in ("train", "test")
    if not relative:
        return ref
    if parse_cifar(dataset):
        return f"{dataset.split(':')[0].split('[')[0]}:{ref}"
    if ref == "train":
        return dataset
    raise GankitError(f"train.fid_ref={ref} names a CIFAR split, but the data is {dataset}; use "
                      "--fid-ref train (the training images), another image source or a "
                      "mu/sigma .npz")


class TrainingFID:
    def __init__(self, cfg: Config, data_dir: str | Path | None, inception: str | Path | None,
                 seed: int = 12345, extractor: FeatureExtractor | None = None) -> None:
        t = cfg.train
        self.n, self.seed, self.with_pr = t.fid_n, seed, t.fid_pr
        self.ref_spec = reference_spec(cfg)
        src = load_source(self.ref_spec, data_dir=data_dir, resolution=cfg.data.resolution,
                          resize_filter=cfg.data.resize_filter)  # a bad reference fails first
        self.ext = extractor or FeatureExtractor(inception, mode=t.fid_mode)
        self.ref, feats = source_stats(src, self.ext, progress=True)
        self.ref_feats: np.ndarray | None = None
        if self.with_pr:
            if src.images is None:
                raise GankitError(f"train.fid_pr needs reference images, but {self.ref_spec} is "
                                  "a statistics file; use an image source for --fid-ref")
            # Precision/recall compare sets of equal size: a fixed random subset of the reals.
            pick = np.random.default_rng(seed).permutation(len(src.images))[: self.n]
            self.ref_feats = feats[pick] if feats is not None else self.ext(src.images[pick])

    def __call__(self, g: torch.nn.Module) -> dict[str, Any]:
        # fp32 samples, as for reported numbers, and no global state touched (resume is exact)
        feats = self.ext(sample_images(g, self.n, self.seed))
        rec = {"fid": fid_from_stats(Stats.from_features(feats), self.ref, method="eigh"),
               "n": self.n, "ref": self.ref_spec, "n_ref": self.ref.n, **self.ext.describe()}
        if self.ref_feats is not None:
            from gankit.metrics.prdc import prdc

            rec.update(prdc(real=self.ref_feats, fake=feats))
        return rec
