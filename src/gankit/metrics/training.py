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
from gankit.generate import sample_images, sample_labels, shard
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import FeatureExtractor
from gankit.metrics.shards import SINGLE
from gankit.metrics.sources import (
    cached_features,
    class_stats,
    intra_fid_vs,
    load_source,
    source_stats,
)


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
    """FID of ``train.fid_n`` samples against ``train.fid_ref`` during training.

    Under DDP every rank calls it (``sharded``): each generates and embeds its share of the
    samples (the same latents one process would draw), the features are gathered on rank 0,
    which alone holds the reference and computes the FID — W ranks take 1/W of the time, and
    no rank waits in a collective while rank 0 alone works. ``reference=False`` (the other
    ranks) skips loading the reference.
    """

    sharded = True

    def __init__(self, cfg: Config, data_dir: str | Path | None, inception: str | Path | None,
                 seed: int = 12345, extractor: FeatureExtractor | None = None,
                 reference: bool = True) -> None:
        t = cfg.train
        self.n, self.seed, self.with_pr = t.fid_n, seed, t.fid_pr
        self.ref_spec = reference_spec(cfg)
        src = load_source(self.ref_spec, data_dir=data_dir, resolution=cfg.data.resolution,
                          resize_filter=cfg.data.resize_filter) if reference else None
        # a bad reference fails before the Inception weights are looked for
        self.ext = extractor or FeatureExtractor(inception, mode=t.fid_mode)
        self.ref: Stats | None = None
        self.ref_feats: np.ndarray | None = None
        self.ref_classes: dict[int, Stats] = {}  # train.fid_intra: per-class reference stats
        if src is None:
            return
        self.ref, feats = source_stats(src, self.ext, progress=True)
        if t.fid_intra:
            if src.images is None or src.labels is None:
                raise GankitError(f"train.fid_intra needs a labelled image reference, but "
                                  f"{self.ref_spec} has no labels; use --fid-ref train (CIFAR or "
                                  "a class-folder dataset) or an .npz with 'labels'")
            if int(src.labels.max()) >= cfg.cond.n_classes:
                raise GankitError(f"train.fid_intra: {self.ref_spec} has labels up to "
                                  f"{int(src.labels.max())}, outside cond.n_classes="
                                  f"{cfg.cond.n_classes}")
            if feats is None:  # statistics were cached; the per-class ones need the features
                feats = cached_features(src, self.ext, True, SINGLE)
            self.ref_classes = class_stats(feats, src.labels)
        if self.with_pr:
            if src.images is None:
                raise GankitError(f"train.fid_pr needs reference images, but {self.ref_spec} is "
                                  "a statistics file; use an image source for --fid-ref")
            # Precision/recall compare sets of equal size: a fixed random subset of the reals.
            pick = np.random.default_rng(seed).permutation(len(src.images))[: self.n]
            self.ref_feats = feats[pick] if feats is not None else self.ext(src.images[pick])

    def __call__(self, g: torch.nn.Module, rank: int = 0,
                 world_size: int = 1) -> dict[str, Any] | None:
        """The FID record on rank 0 (None on the other ranks)."""
        # fp32 samples, as for reported numbers, and no global state touched (resume is exact)
        part = shard(self.n, rank, world_size)
        feats = self.ext(sample_images(g, self.n, self.seed, part=part))
        if world_size > 1:
            gathered: list[Any] = [None] * world_size
            torch.distributed.gather_object(feats, gathered if rank == 0 else None, dst=0)
            if rank != 0:
                return None
            feats = np.concatenate(gathered)
        if self.ref is None:
            raise GankitError("this TrainingFID was built without its reference (reference=False)")
        rec = {"fid": fid_from_stats(Stats.from_features(feats), self.ref, method="eigh"),
               "n": self.n, "ref": self.ref_spec, "n_ref": self.ref.n, **self.ext.describe()}
        if world_size > 1:
            rec["ranks"] = world_size
        if self.ref_classes:  # the class-balanced labels sample_images gave the samples
            rec.update(intra_fid_vs(feats, sample_labels(g, self.n).numpy(), self.ref_classes,
                                    method="eigh"))
        if self.ref_feats is not None:
            from gankit.metrics.prdc import prdc

            rec.update(prdc(real=self.ref_feats, fake=feats))
        return rec
