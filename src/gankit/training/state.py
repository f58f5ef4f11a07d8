"""The training state: models, optimizers, EMA, data order, RNGs and the position in the run.

Resume is exact because this object is all there is: a checkpoint holds the weights,
optimizer and scaler state, every RNG (data order, noise, torch CPU and CUDA, per rank), the
position inside the epoch and the partial logging window, so training continued from *any*
checkpoint gives bit-identical weights on the CPU to training that never stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gankit.config import Config
from gankit.data import BatchSampler
from gankit.errors import GankitError
from gankit.models import build_models
from gankit.models.layers import call
from gankit.training import checkpoint
from gankit.training.ema import EMA
from gankit.training.runtime import Runtime, all_reduce_max, gather_objects, setup, use_sync_bn
from gankit.training.step import GANStep

STATE_KEYS = ("epoch", "iteration", "global_step", "step", "data_rng", "noise_rng", "rank_rng",
              "world_size", "elapsed", "best", "lr_scale", "rollbacks")


class NonFiniteLoss(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


def check_labels(cfg: Config, labels: torch.Tensor | None, classes: list[str] | None,
                 n: int) -> torch.Tensor | None:
    """The labels a conditional run trains on (None for an unconditional one), checked: every
    image has one, all are classes of ``cond.n_classes``, and no class is empty."""
    k = cfg.cond.n_classes
    if not k:
        return None
    src = cfg.data.dataset
    if labels is None:
        raise GankitError(f"cond.n_classes={k} needs class labels, but {src} has none; use "
                          "CIFAR, a folder with one sub-folder per class, or an .npz with a "
                          "'labels' array")
    if len(labels) != n:
        raise GankitError(f"{src}: {len(labels)} labels for {n} images")
    if classes is not None and len(classes) != k:
        raise GankitError(f"{src} has {len(classes)} classes but cond.n_classes={k}; set "
                          f"cond.n_classes={len(classes)}")
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise GankitError(f"{src}: label {int(labels.max())} is outside the {k} classes "
                          f"0..{k - 1} (cond.n_classes)")
    counts = torch.bincount(labels, minlength=k)
    empty = [i for i in range(k) if counts[i] == 0]
    if empty:
        names = [classes[i] if classes else str(i) for i in empty[:5]]
        raise GankitError(f"{src}: class{'es' if len(empty) > 1 else ''} {', '.join(names)} "
                          f"{'have' if len(empty) > 1 else 'has'} no images (data.limit or a "
                          "slice too small?); every class needs some")
    return labels


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The global-RNG seed (dropout, DiffAugment, the GP's alpha) of a rank that a resumed
    checkpoint has no state for (resuming at an epoch end with more ranks): from the run
    seed, the rank and the step, so new ranks draw distinct streams, reproducibly, instead
    of copying rank 0's."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])

class TrainingState:
    """G, D, their optimizers (in :class:`GANStep`), the EMA, the data sampler, every RNG and
    the position in training: what a checkpoint holds and what an iteration advances.

    ``models``: a (G, D) pair to train instead of the config's; their ``arch`` is in ``cfg``.
    """

    def __init__(self, cfg: Config, images: torch.Tensor, rt: Runtime | None = None,
                 models: tuple[torch.nn.Module, torch.nn.Module] | None = None,
                 labels: torch.Tensor | None = None, classes: list[str] | None = None) -> None:
        self.cfg, self.rt = cfg, rt or setup(cfg.perf)
        labels = check_labels(cfg, labels, classes, len(images))
        torch.manual_seed(cfg.train.seed + self.rt.rank)  # init (rank 0's wins under DDP), dropout
        g, d = models if models is not None else build_models(cfg)
        sync = [use_sync_bn(cfg.perf.sync_bn, self.rt.device, self.rt.world_size, m)
                for m in (g, d)]
        g, d = (torch.nn.SyncBatchNorm.convert_sync_batchnorm(m) if on else m
                for m, on in zip((g, d), sync, strict=True))
        self.sync_bn = any(sync)
        fmt = torch.channels_last if self.rt.channels_last else torch.contiguous_format
        self.g = g.to(self.rt.device, memory_format=fmt)
        self.d = d.to(self.rt.device, memory_format=fmt)
        dev, seed = self.rt.device, cfg.train.seed * 7919
        # Data order and noise are shared by all ranks (each uses its slice); see BatchSampler.
        self.data_gen = torch.Generator().manual_seed(seed + 1)
        self.noise_gen = torch.Generator(dev).manual_seed(seed + 2)
        fixed = torch.Generator().manual_seed(seed + 3)
        self.fixed_z = torch.randn(cfg.train.n_samples, cfg.generator.latent_dim, generator=fixed)
        self.fixed_y: torch.Tensor | None = None
        self.grid_cols: int | None = None  # None: a square grid
        if cfg.cond.n_classes:  # grids: one row per class, the same latents in every row
            k = cfg.cond.n_classes
            cols = max(1, cfg.train.n_samples // k)
            self.fixed_z = self.fixed_z[:cols].repeat(k, 1)
            self.fixed_y = torch.arange(k).repeat_interleave(cols)
            self.grid_cols = cols
        r = cfg.data.resolution
        if tuple(images.shape[1:]) != (3, r, r):
            raise GankitError(f"training images are {tuple(images.shape[1:])}, but the models are "
                              f"built for 3 x {r} x {r} (data.resolution)")
        n_real = cfg.train.n_real
        if n_real * self.rt.world_size > len(images):
            raise GankitError(
                f"train.batch_size needs {n_real} real images per D step on each of "
                f"{self.rt.world_size} rank(s) but only {len(images)} are loaded (data.limit?)"
            )
        self.n_real = n_real
        self.sampler = BatchSampler(images.to(dev), n_real, self.data_gen, cfg.data.hflip,
                                    self.rt.rank, self.rt.world_size,
                                    labels=None if labels is None else labels.to(dev))
        self.step = GANStep(cfg, self.g, self.d, self.rt, self.noise_gen, compile=self.rt.compile)
        if labels is not None and cfg.cond.fake_labels == "data":
            freq = torch.bincount(labels, minlength=cfg.cond.n_classes).double()
            self.step.label_probs = (freq / freq.sum()).float().to(dev)
        self.ema = EMA(self.g, cfg.ema.decay, cfg.ema.warmup) if cfg.ema.enabled else None
        self.steps_per_epoch = len(self.sampler) // cfg.optim.n_dis
        if self.steps_per_epoch < 1:
            raise GankitError("an epoch has no full iteration: lower batch_size or n_dis")
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed iterations of the current epoch
        self.global_step = 0
        self.best: dict[str, Any] = {}
        self.lr_scale, self.rollbacks = 1.0, 0
        # fraction of train.minutes used, the same on every rank (set between steps by train())
        self.budget_used = 0.0
        self.last_eval_seconds = 0.0
        self._elapsed_before, self._t0 = 0.0, time.monotonic()
        self._batches = None
        self._epoch_rng: torch.Tensor | None = None
        self._epoch_seconds = 0.0
        self._t_log, self._window = time.perf_counter(), 0

    @property
    def g_eval(self) -> torch.nn.Module:
        """The generator for samples, FID and the best checkpoint: the EMA one when enabled
        (with batch-norm statistics of its own)."""
        return self.ema.averaged() if self.ema is not None else self.g

    def lr_factor(self) -> float:
        """The schedule's factor for the next iteration (linear: 1 until ``decay_start``, then
        down to 0 at the end).

        The end is the last epoch or, with a time budget, the budget, whichever comes first:
        a 60-minute run of a 640-epoch recipe decays to 0 in its hour, as the recipe intends,
        instead of stopping at an almost undecayed learning rate."""
        o = self.cfg.optim
        if o.schedule == "linear":
            done = max(self.global_step / self.total_steps, self.budget_used)
            return min(1.0, max(0.0, (1.0 - done) / (1.0 - o.decay_start)))
        return 1.0

    # -- time -----------------------------------------------------------------------------
    @property
    def elapsed_before(self) -> float:
        """Seconds this run had used when this session started (0, or the checkpoint's)."""
        return self._elapsed_before

    def elapsed(self) -> float:
        """Seconds of training and in-run evaluation, over every session of this run."""
        return self._elapsed_before + time.monotonic() - self._t0

    @property
    def progress_epoch(self) -> float:
        return round(self.epoch + self.iteration / self.steps_per_epoch, 4)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The exact position; a collective under DDP (every rank's RNG is gathered)."""
        mine = {"torch_rng": torch.get_rng_state()}
        if self.rt.device.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(self.rt.device)
        return {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "step": self.step.state_dict(),
            # the data generator as it was when this epoch's order was drawn
            "data_rng": self._epoch_rng if self.iteration else self.data_gen.get_state(),
            "noise_rng": self.noise_gen.get_state(),
            "rank_rng": gather_objects(mine, self.rt),
            "world_size": self.rt.world_size,
            "elapsed": self.elapsed(),
            "epoch_seconds": self._epoch_seconds_now(),
            "last_eval_seconds": self.last_eval_seconds,
            "best": json.dumps(self.best),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
        }

    def load(self, path: Path) -> None:
        parts = checkpoint.load_tensors(path)
        try:
            self.g.load_state_dict(parts["G"])
            self.d.load_state_dict(parts["D"])
            if self.ema is not None:
                self.ema.model.load_state_dict(parts["G_ema"])
        except (RuntimeError, KeyError) as err:
            first = str(err).strip().splitlines()[0]
            raise GankitError(
                f"{path} does not fit the run's config.yaml ({first}); was config.yaml edited? "
                "Restore it, or start a new run with --out"
            ) from None
        st = checkpoint.load_state(path, STATE_KEYS)
        meta_step = checkpoint.checkpoint_step(path)
        if meta_step is not None and meta_step != int(st["global_step"]):
            raise GankitError(f"{path} (step {meta_step}) and its training state (step "
                              f"{st['global_step']}) disagree; resume from another checkpoint")
        ranks = st["rank_rng"]
        if len(ranks) != self.rt.world_size and int(st["iteration"]):
            raise GankitError(
                f"{path} was written mid-epoch by {len(ranks)} process(es); resume it with the "
                f"same number (this run has {self.rt.world_size}), or from an epoch checkpoint"
            )
        mine = ranks[self.rt.rank] if self.rt.rank < len(ranks) else None
        try:
            self.step.load_state_dict(st["step"])
            self.data_gen.set_state(st["data_rng"])
            self.noise_gen.set_state(st["noise_rng"])
            if mine is None:  # a rank the checkpoint did not have: its own stream
                torch.manual_seed(rank_seed(self.cfg.train.seed, self.rt.rank,
                                            int(st["global_step"])))
            else:
                torch.set_rng_state(mine["torch_rng"])
            if mine is not None and self.rt.device.type == "cuda" and "cuda_rng" in mine:
                torch.cuda.set_rng_state(mine["cuda_rng"], self.rt.device)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise GankitError(f"training state of {path} does not fit this run "
                              f"({type(err).__name__}: {err})") from None
        self.epoch, self.iteration = int(st["epoch"]), int(st["iteration"])
        self.global_step = int(st["global_step"])
        self._elapsed_before, self._t0 = float(st["elapsed"]), time.monotonic()
        self._epoch_seconds = float(st.get("epoch_seconds", 0.0))
        self.last_eval_seconds = float(st.get("last_eval_seconds", 0.0))
        self.best = json.loads(st["best"])
        self.lr_scale, self.rollbacks = float(st["lr_scale"]), int(st["rollbacks"])
        if self.ema is not None:
            self.ema.updates = int(st.get("ema_updates", 0))
        self._batches = None

    def save(self, ckpt_dir: Path, name: str) -> None:
        """Write checkpoint ``name`` (all ranks call; rank 0 writes), refusing a diverged one."""
        bad = self.step.nonfinite_step()
        modules = [self.g, self.d] + ([self.ema.model] if self.ema is not None else [])
        weights_ok = all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())
        if all_reduce_max([float(bad is not None or not weights_ok)], self.rt)[0]:
            raise NonFiniteLoss(bad or self.global_step)
        state = self.state()
        if self.rt.is_main:
            checkpoint.save(ckpt_dir / f"{name}.safetensors", self.cfg, self.epoch, self.g,
                            self.d, state, step=self.global_step, extra_modules=self.extra_modules())
            checkpoint.prune(ckpt_dir, self.cfg.train.keep_every)

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        return {"G_ema": self.ema.averaged()} if self.ema is not None else {}

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images of the evaluation G (EMA where enabled) for latents ``z`` (and labels)."""
        g = self.g_eval
        was_training = g.training
        g.eval()
        try:
            with self.rt.autocast():
                y = None if y is None else y.to(self.rt.device)
                return call(g, z.to(self.rt.device), y).float()
        finally:
            g.train(was_training)

    def sample_grid(self) -> torch.Tensor:
        """The fixed latents' images (one row per class when conditional)."""
        return self.sample(self.fixed_z, self.fixed_y)

    # -- iterations ----------------------------------------------------------------------
    def _epoch_seconds_now(self) -> float:
        return self._epoch_seconds + (time.perf_counter() - self._t_epoch
                                      if self._batches is not None else 0.0)

    def run_iterations(
        self, log: Callable[[dict[str, Any]], None], bar: tqdm | None,
        pause: Callable[[], str | None], on_step: Callable[[], None] | None = None,
    ) -> str | None:
        """Train to the end of the epoch (returns None) or until ``pause()`` names a reason
        to break off between two steps (returns it; call again to continue the epoch).
        ``on_step`` runs after every iteration (the callbacks' hook)."""
        cfg = self.cfg
        n_dis, every = cfg.optim.n_dis, cfg.train.log_every
        real_per_step = self.n_real * n_dis * self.rt.world_size
        if self._batches is None:
            self._epoch_rng = self.data_gen.get_state()
            self._batches = self.sampler.epoch(self.iteration * n_dis)
            self._t_epoch, self._t_log, self._window = time.perf_counter(), time.perf_counter(), 0
        while self.iteration < self.steps_per_epoch:
            self.step.scale_lr(self.lr_scale * self.lr_factor())
            self.step([next(self._batches) for _ in range(n_dis)])
            if self.ema is not None:
                self.ema.update(self.g)
            self.iteration += 1
            self.global_step += 1
            self._window += 1
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step()
            if self.iteration % every == 0 or self.iteration == self.steps_per_epoch:
                self._log_window(log, bar, real_per_step)
            if self.iteration < self.steps_per_epoch and (reason := pause()):
                return reason
        seconds = self._epoch_seconds_now()
        self.epoch, self.iteration, self._batches, self._epoch_seconds = self.epoch + 1, 0, None, 0.0
        log({"kind": "epoch", "epoch": self.epoch, "step": self.global_step,
             "epoch_seconds": seconds,
             "real_images_per_s": self.steps_per_epoch * real_per_step / max(seconds, 1e-9)})
        return None

    def _log_window(self, log: Callable[[dict[str, Any]], None], bar: tqdm | None,
                    real_per_step: int) -> None:
        now = time.perf_counter()
        stats = self.step.pop_stats()
        if not all(map(_finite, stats.values())):
            raise NonFiniteLoss(self.step.nonfinite_step() or self.global_step)
        rec = {"kind": "step", "epoch": self.epoch + 1, "step": self.global_step, **stats,
               "real_images_per_s": self._window * real_per_step / max(now - self._t_log, 1e-9),
               "g_lr": self.step.g_opt.param_groups[0]["lr"],
               "d_lr": self.step.d_opt.param_groups[0]["lr"]}
        self._t_log, self._window = now, 0
        log(rec)
        if bar is not None:
            bar.set_postfix(D=f"{rec['d_loss_real'] + rec['d_loss_fake']:.3f}",
                            G=f"{rec['g_loss']:.3f}", img_s=f"{rec['real_images_per_s']:.0f}")

def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


