"""The training loop, top to bottom: set up, (resume), epochs of GAN steps, and at epoch
ends metrics, sample grids, FID, checkpoints. Only rank 0 writes files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from gankit.config import Config, validate
from gankit.data import BatchSampler, load_cifar10
from gankit.errors import GankitError
from gankit.io import append_jsonl, read_jsonl, write_json, write_text
from gankit.models import build_models
from gankit.reports.images import save_grid, to_uint8
from gankit.training import checkpoint
from gankit.training.record import run_record
from gankit.training.runtime import Runtime, setup
from gankit.training.step import GANStep

# An evaluator maps a generator to {"fid": float, ...}; built by the metrics package.
Evaluator = Callable[[torch.nn.Module], dict[str, Any]]


def load_run_config(run_dir: Path) -> Config:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise GankitError(f"{run_dir} is not a gankit run folder (no config.yaml)")
    return validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def load_training_images(cfg: Config, data_dir: str | Path | None) -> torch.Tensor:
    images, _ = load_cifar10(data_dir, cfg.data.split)
    return images[: cfg.data.limit] if cfg.data.limit else images


class Trainer:
    def __init__(self, cfg: Config, images: torch.Tensor, rt: Runtime | None = None) -> None:
        self.cfg, self.rt = cfg, rt or setup(cfg.perf)
        torch.manual_seed(cfg.train.seed + self.rt.rank)  # dropout and init
        g, d = build_models(cfg)
        fmt = torch.channels_last if self.rt.channels_last else torch.contiguous_format
        self.g = g.to(self.rt.device, memory_format=fmt)
        self.d = d.to(self.rt.device, memory_format=fmt)
        self.g_train, self.d_train = self.g, self.d
        if self.rt.world_size > 1:
            ddp = torch.nn.parallel.DistributedDataParallel
            self.g_train, self.d_train = ddp(self.g), ddp(self.d)
        if cfg.perf.compile:
            self.g_train, self.d_train = torch.compile(self.g_train), torch.compile(self.d_train)
        dev = self.rt.device
        self.data_gen = torch.Generator().manual_seed(cfg.train.seed * 7919 + 1 + self.rt.rank)
        self.noise_gen = torch.Generator(dev).manual_seed(cfg.train.seed * 7919 + 2 + self.rt.rank)
        fixed = torch.Generator().manual_seed(cfg.train.seed * 7919 + 3)
        self.fixed_z = torch.randn(cfg.train.n_samples, cfg.generator.latent_dim, generator=fixed)
        n_real = cfg.train.batch_size // 2 if cfg.train.d_batch == "half" else cfg.train.batch_size
        if n_real > len(images):
            raise GankitError(
                f"train.batch_size needs {n_real} real images per D step but only "
                f"{len(images)} are loaded (data.limit?)"
            )
        self.sampler = BatchSampler(
            images.to(dev), n_real, self.data_gen, cfg.data.hflip, self.rt.world_size
        )
        self.step = GANStep(cfg, self.g_train, self.d_train, self.rt, self.noise_gen)
        self.steps_per_epoch = len(self.sampler) // cfg.optim.n_dis
        if self.steps_per_epoch < 1:
            raise GankitError("an epoch has no full iteration: lower batch_size or n_dis")
        self.epoch, self.global_step = 0, 0
        self.best: dict[str, Any] = {}

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "step": self.step.state_dict(),
            "data_rng": self.data_gen.get_state(),
            "noise_rng": self.noise_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best": json.dumps(self.best),
        }

    def load(self, path: Path) -> None:
        _, epoch, g_sd, d_sd = checkpoint.load(path)
        self.g.load_state_dict(g_sd)
        self.d.load_state_dict(d_sd)
        st = checkpoint.load_state(path)
        self.step.load_state_dict(st["step"])
        self.data_gen.set_state(st["data_rng"])
        self.noise_gen.set_state(st["noise_rng"])
        torch.set_rng_state(st["torch_rng"])
        self.epoch, self.global_step = epoch, int(st["global_step"])
        self.best = json.loads(st["best"])

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        self.g.eval()
        try:
            with self.rt.autocast():
                return self.g(z.to(self.rt.device)).float()
        finally:
            self.g.train()

    # -- one epoch -----------------------------------------------------------------------
    def run_epoch(self, log: Callable[[dict[str, Any]], None], bar: tqdm | None) -> dict[str, Any]:
        cfg = self.cfg
        self.epoch += 1
        n_dis, every = cfg.optim.n_dis, cfg.train.log_every
        images_per_step = cfg.train.batch_size * n_dis * self.rt.world_size
        batches = self.sampler.epoch()
        t_epoch = t_log = time.perf_counter()
        for i in range(self.steps_per_epoch):
            self.step([next(batches) for _ in range(n_dis)])
            self.global_step += 1
            if bar is not None:
                bar.update(1)
            if (i + 1) % every == 0 or i + 1 == self.steps_per_epoch:
                now = time.perf_counter()
                steps = (i % every) + 1
                rec = {
                    "kind": "step", "epoch": self.epoch, "step": self.global_step,
                    **self.step.pop_stats(),
                    "images_per_s": steps * images_per_step / max(now - t_log, 1e-9),
                }
                t_log = now
                log(rec)
                if bar is not None:
                    bar.set_postfix(
                        D=f"{rec['d_loss_real'] + rec['d_loss_fake']:.3f}",
                        G=f"{rec['g_loss']:.3f}", img_s=f"{rec['images_per_s']:.0f}",
                    )
        seconds = time.perf_counter() - t_epoch
        return {
            "kind": "epoch", "epoch": self.epoch, "step": self.global_step,
            "epoch_seconds": seconds,
            "images_per_s": self.steps_per_epoch * images_per_step / max(seconds, 1e-9),
        }


def _prepare_run_dir(run_dir: Path, cfg: Config, rt: Runtime) -> None:
    """Create the run folder on rank 0; other ranks wait until it exists."""
    if not rt.is_main:
        torch.distributed.barrier()
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GankitError(
            f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it "
            "or choose another --out"
        )
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    write_json(run_dir / "run.json", run_record(cfg.train.seed, {
        "device": str(rt.device), "precision": rt.precision,
        "channels_last": rt.channels_last, "world_size": rt.world_size,
    }))
    if rt.world_size > 1:
        torch.distributed.barrier()


def train(
    cfg: Config,
    run_dir: Path,
    images: torch.Tensor,
    *,
    resume: bool = False,
    progress: bool = True,
    evaluator: Evaluator | None = None,
    on_epoch: Callable[[Path], None] | None = None,
) -> Trainer:
    """Train ``cfg`` in ``run_dir`` (new, or continued from its newest checkpoint)."""
    rt = setup(cfg.perf)
    ckpt_dir = run_dir / "checkpoints"
    metrics = run_dir / "metrics.jsonl"
    if not resume:
        _prepare_run_dir(run_dir, cfg, rt)
    trainer = Trainer(cfg, images, rt)
    if resume:
        ckpts = checkpoint.epoch_checkpoints(ckpt_dir)
        if ckpts:
            trainer.load(ckpts[-1][1])
        if rt.is_main:  # drop records of epochs after the checkpoint (the interrupted part)
            kept = [r for r in read_jsonl(metrics) if r.get("epoch", 0) <= trainer.epoch]
            write_text(metrics, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    t0 = time.time()

    def log(rec: dict[str, Any]) -> None:
        if rt.is_main:
            rec["wall_time"] = time.time() - t0
            append_jsonl(metrics, [rec])

    t = cfg.train
    total = t.epochs * trainer.steps_per_epoch
    bar = tqdm(total=total, initial=trainer.global_step, disable=not (progress and rt.is_main),
               unit="it", dynamic_ncols=True)
    try:
        while trainer.epoch < t.epochs:
            bar.set_description(f"epoch {trainer.epoch + 1}/{t.epochs}")
            log(trainer.run_epoch(log, bar))
            last = trainer.epoch == t.epochs
            e = trainer.epoch
            if not rt.is_main:
                continue
            if e % t.sample_every == 0 or last:
                save_grid(run_dir / "samples" / f"epoch-{e:06d}.png",
                          to_uint8(trainer.sample(trainer.fixed_z)))
            if evaluator is not None and t.fid_every and (e % t.fid_every == 0 or last):
                res = evaluator(trainer.g)
                best = not trainer.best or res["fid"] < trainer.best["fid"]
                if best:
                    trainer.best = {"fid": res["fid"], "epoch": e}
                    checkpoint.save(ckpt_dir / "best.safetensors", cfg, e, trainer.g, trainer.d,
                                    extra_meta={"fid": res})
                log({"kind": "fid", "epoch": e, "step": trainer.global_step, **res,
                     "best_fid": trainer.best["fid"], "best_epoch": trainer.best["epoch"]})
            if e % t.checkpoint_every == 0 or last:
                checkpoint.save(ckpt_dir / f"epoch-{e:06d}.safetensors", cfg, e, trainer.g,
                                trainer.d, trainer.state())
                checkpoint.prune(ckpt_dir, t.keep_every)
            if on_epoch is not None:
                on_epoch(run_dir)
    finally:
        bar.close()
    return trainer
