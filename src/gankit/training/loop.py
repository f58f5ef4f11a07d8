"""The training loop, top to bottom: set up, (resume), iterations of GAN steps, and at epoch
ends metrics, sample grids, FID and checkpoints. Only rank 0 writes files.

Resume is exact: a checkpoint holds the weights, optimizer and scaler state, every RNG (data
order, noise, torch CPU and CUDA, per rank), the position inside the epoch and the partial
logging window, so training continued from *any* checkpoint gives bit-identical weights on
the CPU to training that never stopped. Checkpoints are written at epoch ends
(``train.checkpoint_every``), every ``train.checkpoint_minutes`` mid-epoch, on SIGINT/SIGTERM,
and when the time budget ``train.minutes`` runs out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from gankit.config import Config, lipschitz_warnings, load_yaml, validate
from gankit.data import BatchSampler, Images, load_images
from gankit.errors import GankitError
from gankit.io import append_jsonl, fsync_dir, read_jsonl, write_json, write_jsonl, write_text
from gankit.models import build_models
from gankit.reports.images import save_grid, to_uint8
from gankit.training import checkpoint, tuner
from gankit.training.ema import EMA
from gankit.training.interrupt import StopSignals
from gankit.training.record import run_record
from gankit.training.runtime import Runtime, all_reduce_max, gather_objects, setup, use_sync_bn
from gankit.training.step import GANStep

# An evaluator maps a generator to {"fid": float, ...}; built by the metrics package.
Evaluator = Callable[[torch.nn.Module], dict[str, Any]]

STATE_KEYS = ("epoch", "iteration", "global_step", "step", "data_rng", "noise_rng", "rank_rng",
              "world_size", "elapsed", "best", "lr_scale", "rollbacks")
MAX_ROLLBACKS = 3
# Under DDP the ranks agree on signals, the clock and checkpoint times through one small
# all-reduce (a host sync); it runs every CLOCK_EVERY steps, not every step. One process needs
# no agreement and checks every step, so a budget stops within one step.
CLOCK_EVERY = 25


def clock_due(global_step: int, world_size: int) -> bool:
    """Whether the step boundary after ``global_step`` checks signals / budget / checkpoint
    time: every step for one process, every ``CLOCK_EVERY`` steps (the same steps on every
    rank, so all enter the collective together) under DDP."""
    return world_size == 1 or global_step % CLOCK_EVERY == 0


class TrainingStopped(Exception):
    """A signal stopped training after a checkpoint holding the exact position was written."""

    def __init__(self, signum: int, run_dir: Path, step: int) -> None:
        super().__init__(f"signal {signum} at step {step}")
        self.signum, self.run_dir, self.step = signum, run_dir, step


class NonFiniteLoss(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


def load_run_config(run_dir: Path) -> Config:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise GankitError(f"{run_dir} is not a gankit run folder (no config.yaml)")
    raw = load_yaml(path)
    try:
        return validate(raw)
    except GankitError as err:
        raise GankitError(f"{path}: {err}; fix the file or restore it") from None


def load_training_images(cfg: Config, data_dir: str | Path | None, progress: bool = True) -> Images:
    """The run's training images at its resolution (see :mod:`gankit.data.sources`)."""
    d = cfg.data
    images = load_images(d.dataset, data_dir=data_dir, split=d.split, resolution=d.resolution,
                         resize_filter=d.resize_filter, progress=progress)
    if d.limit:
        images = Images(images.pixels[: d.limit], {**images.info, "limit": d.limit})
    return images


def fid_protocol(cfg: Config) -> dict[str, Any]:
    """What makes two FIDs comparable: the best checkpoint is only chosen within one protocol."""
    t = cfg.train
    return {"n": t.fid_n, "ref": t.fid_ref.removeprefix("cifar10:"), "mode": t.fid_mode}


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The global-RNG seed (dropout, DiffAugment, the GP's alpha) of a rank that a resumed
    checkpoint has no state for (resuming at an epoch end with more ranks): from the run
    seed, the rank and the step, so new ranks draw distinct streams, reproducibly, instead
    of copying rank 0's."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


class Trainer:
    def __init__(self, cfg: Config, images: torch.Tensor, rt: Runtime | None = None) -> None:
        self.cfg, self.rt = cfg, rt or setup(cfg.perf)
        torch.manual_seed(cfg.train.seed + self.rt.rank)  # init (rank 0's wins under DDP), dropout
        g, d = build_models(cfg)
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
                                    self.rt.rank, self.rt.world_size)
        self.step = GANStep(cfg, self.g, self.d, self.rt, self.noise_gen, compile=self.rt.compile)
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
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        g = self.g_eval
        was_training = g.training
        g.eval()
        try:
            with self.rt.autocast():
                return g(z.to(self.rt.device)).float()
        finally:
            g.train(was_training)

    # -- iterations ----------------------------------------------------------------------
    def _epoch_seconds_now(self) -> float:
        return self._epoch_seconds + (time.perf_counter() - self._t_epoch
                                      if self._batches is not None else 0.0)

    def run_iterations(
        self, log: Callable[[dict[str, Any]], None], bar: tqdm | None,
        pause: Callable[[], str | None],
    ) -> str | None:
        """Train to the end of the epoch (returns None) or until ``pause()`` names a reason
        to break off between two steps (returns it; call again to continue the epoch)."""
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


def _resolve_perf(cfg: Config, run_dir: Path, resume: bool,
                  rt: Runtime) -> tuple[Config, dict[str, Any]]:
    """Concrete perf settings: a resumed run keeps the ones it started with (same numerics);
    a new one asks the tuner (cached measurements, or a few timed steps)."""
    rec_path = run_dir / "run.json"
    if resume and rec_path.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            rec = json.loads(rec_path.read_text())["perf"]
            return tuner.apply(cfg, rec["choice"]), rec
    return tuner.resolve(cfg, rt.world_size, rt.rank)


def _prepare_run_dir(run_dir: Path, cfg: Config, rt: Runtime,
                     perf_record: dict[str, Any] | None = None,
                     data_info: dict[str, Any] | None = None) -> None:
    """Create the run folder on rank 0 (whole or not at all); other ranks wait for it."""
    if not rt.is_main:
        torch.distributed.barrier()
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise GankitError(
            f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it "
            "or choose another --out"
        )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
    try:
        (tmp / "checkpoints").mkdir()
        (tmp / "samples").mkdir()
        write_text(tmp / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        write_json(tmp / "run.json", {**run_record(cfg.train.seed, _runtime_record(rt)),
                                      "config_warnings": lipschitz_warnings(cfg),
                                      "perf": perf_record or {}, "data": data_info or {}})
        os.replace(tmp, run_dir)  # an empty run_dir is replaced too
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(run_dir.parent)
    if rt.world_size > 1:
        torch.distributed.barrier()


def _runtime_record(rt: Runtime) -> dict[str, Any]:
    return {"device": str(rt.device), "precision": rt.precision, "channels_last": rt.channels_last,
            "threads": torch.get_num_threads() if rt.device.type == "cpu" else None,
            "compile": rt.compile, "world_size": rt.world_size}


def _truncate_metrics(metrics: Path, step: int) -> None:
    """Drop records of steps after ``step`` (work lost with the interruption)."""
    write_jsonl(metrics, [r for r in read_jsonl(metrics) if r.get("step", 0) <= step])


def _resume(trainer: Trainer, run_dir: Path, cfg: Config, rt: Runtime) -> dict[str, Any]:
    """Load the newest complete checkpoint; record the resume. Nothing in the run folder is
    changed before the checkpoint has loaded."""
    ckpt_dir = run_dir / "checkpoints"
    found = checkpoint.resume_checkpoints(ckpt_dir)
    if not found and checkpoint.epoch_checkpoints(ckpt_dir):
        raise GankitError(f"the checkpoints in {ckpt_dir} carry no step number (an older gankit "
                          "wrote them); start a new run")
    path = found[-1][1] if found else None
    if path is not None:
        trainer.load(path)
    note: dict[str, Any] = {"kind": "resume", "step": trainer.global_step,
                            "epoch": trainer.progress_epoch,
                            "checkpoint": path.name if path else None}
    old = trainer.best.get("protocol")
    if trainer.best and old != fid_protocol(cfg):
        note["fid_protocol_changed"] = {"old": old, "new": fid_protocol(cfg),
                                        "old_best": trainer.best}
        trainer.best = {}
    if rt.is_main:
        checkpoint.clean_partial(ckpt_dir)
        if "fid_protocol_changed" in note and (ckpt_dir / "best.safetensors").is_file():
            kept = ckpt_dir / f"best-until-step-{trainer.global_step:09d}.safetensors"
            (ckpt_dir / "best.safetensors").replace(kept)
            note["old_best_kept_as"] = kept.name
        _truncate_metrics(run_dir / "metrics.jsonl", trainer.global_step)
        write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"),
                                                           sort_keys=False))
        rec_path = run_dir / "run.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
        rec.setdefault("resumes", []).append(
            {**run_record(cfg.train.seed, _runtime_record(rt)), "from_step": trainer.global_step})
        write_json(rec_path, rec)
    return note


def train(
    cfg: Config,
    run_dir: Path,
    images: torch.Tensor | Images,
    *,
    resume: bool = False,
    progress: bool = True,
    evaluator: Evaluator | None = None,
    on_epoch: Callable[[Path], None] | None = None,
) -> Trainer:
    """Train ``cfg`` in ``run_dir`` (new, or continued from its newest checkpoint).

    Raises :class:`TrainingStopped` after SIGINT/SIGTERM (a checkpoint was written first).
    """
    data_info = images.info if isinstance(images, Images) else None
    if isinstance(images, Images):
        images = images.pixels
    rt = setup(cfg.perf)  # joins the process group under torchrun
    user_cfg = cfg  # what config.yaml keeps ("auto" stays auto; run.json has the choice)
    cfg, perf_record = _resolve_perf(cfg, run_dir, resume, rt)
    rt = setup(cfg.perf)
    trainer = Trainer(cfg, images, rt)  # every config/data problem shows up before any file
    ckpt_dir, metrics = run_dir / "checkpoints", run_dir / "metrics.jsonl"
    t = cfg.train
    board = None
    if t.tensorboard and rt.is_main:
        from gankit.training.tensorboard import TensorBoard

        TensorBoard.check()  # a missing package is an error before any file is written

    def log(rec: dict[str, Any]) -> None:
        if rt.is_main:
            rec["wall_time"] = trainer.elapsed()
            append_jsonl(metrics, [rec])
            if board is not None:
                board.log(rec)

    if resume:
        log(_resume(trainer, run_dir, user_cfg, rt))
    else:
        _prepare_run_dir(run_dir, user_cfg, rt, perf_record, data_info)
    if t.tensorboard and rt.is_main:
        board = TensorBoard(run_dir)
    budget = t.minutes * 60 if t.minutes else None
    last_ckpt = {"time": time.monotonic(), "step": -1}
    last_eval_step = -1
    signals = StopSignals()

    if budget is not None:  # from the checkpointed time, identical on every rank
        trainer.budget_used = min(1.0, trainer.elapsed_before / budget)

    def pause() -> str | None:
        if not clock_due(trainer.global_step, rt.world_size):
            return None
        reserve = trainer.last_eval_seconds if evaluator is not None else 0.0
        due = t.checkpoint_minutes > 0 and \
            time.monotonic() - last_ckpt["time"] >= 60 * t.checkpoint_minutes
        stop, used, due = all_reduce_max([
            float(signals.received is not None),
            trainer.elapsed() + reserve,  # the slowest rank's clock decides, for all ranks
            float(due),
        ], rt)
        if budget is not None:
            trainer.budget_used = min(1.0, used / budget)
        return ("signal" if stop else "budget" if budget is not None and used >= budget
                else "checkpoint" if due else None)

    def evaluate(label: float) -> None:
        nonlocal last_eval_step
        if evaluator is None or not t.fid_every or not rt.is_main:
            return
        if last_eval_step == trainer.global_step:
            return
        t_eval = time.monotonic()
        res = evaluator(trainer.g_eval)
        trainer.last_eval_seconds = time.monotonic() - t_eval
        last_eval_step = trainer.global_step
        if not trainer.best or res["fid"] < trainer.best["fid"]:
            trainer.best = {"fid": res["fid"], "epoch": label, "step": trainer.global_step,
                            "protocol": fid_protocol(cfg)}
            checkpoint.save(ckpt_dir / "best.safetensors", cfg, trainer.epoch, trainer.g,
                            trainer.d, extra_meta={"fid": res}, step=trainer.global_step,
                            extra_modules=trainer.extra_modules())
        log({"kind": "fid", "epoch": label, "step": trainer.global_step, **res,
             "eval_seconds": trainer.last_eval_seconds,
             "best_fid": trainer.best["fid"], "best_epoch": trainer.best["epoch"]})

    def save(name: str | None = None) -> None:
        """Checkpoint ``name`` (default: a ``step-`` one) unless this step has one already."""
        if last_ckpt["step"] == trainer.global_step:
            return
        trainer.save(ckpt_dir, name or f"step-{trainer.global_step:09d}")
        last_ckpt.update(time=time.monotonic(), step=trainer.global_step)

    pid_file = run_dir / "running.pid"  # lets `gankit runs` tell a live run from a dead one
    if rt.is_main:
        write_text(pid_file, f"{os.getpid()}\n")
    total = t.epochs * trainer.steps_per_epoch
    bar = tqdm(total=total, initial=min(trainer.global_step, total),
               disable=not (progress and rt.is_main), unit="it", dynamic_ncols=True)
    reason = "epochs"
    try:
        with signals:
            while trainer.epoch < t.epochs:
                bar.set_description(f"epoch {trainer.epoch + 1}/{t.epochs}")
                try:
                    why = trainer.run_iterations(log, bar, pause)
                    if why is None:  # the epoch ended
                        _end_of_epoch(trainer, run_dir, evaluate, save, on_epoch, board)
                        if trainer.epoch < t.epochs:
                            why = pause()
                    if why == "checkpoint":
                        save()
                    elif why == "signal":
                        save()
                        log({"kind": "end", "reason": "signal", "step": trainer.global_step,
                             "epoch": trainer.progress_epoch})
                        raise TrainingStopped(signals.received or 0, run_dir, trainer.global_step)
                    elif why == "budget":
                        reason = "budget"
                        if rt.is_main:
                            save_grid(run_dir / "samples" /
                                      f"final-step-{trainer.global_step:09d}.png",
                                      to_uint8(trainer.sample(trainer.fixed_z)))
                        evaluate(trainer.progress_epoch)
                        save()
                        if on_epoch is not None and rt.is_main:
                            on_epoch(run_dir)
                        break
                except NonFiniteLoss as err:
                    _on_nonfinite(trainer, err, ckpt_dir, metrics, log)
    finally:
        bar.close()
        if rt.is_main:
            pid_file.unlink(missing_ok=True)
        if board is not None:
            board.close()
    log({"kind": "end", "reason": reason, "step": trainer.global_step,
         "epoch": trainer.progress_epoch})
    return trainer


def _end_of_epoch(trainer: Trainer, run_dir: Path, evaluate: Callable[[float], None],
                  save: Callable[[str | None], None], on_epoch: Callable[[Path], None] | None,
                  board: Any = None) -> None:
    t, e = trainer.cfg.train, trainer.epoch
    last = e == t.epochs
    if trainer.rt.is_main and (e % t.sample_every == 0 or last):
        images = to_uint8(trainer.sample(trainer.fixed_z))
        save_grid(run_dir / "samples" / f"epoch-{e:06d}.png", images)
        if board is not None:
            from gankit.reports.images import make_grid

            board.image("samples", make_grid(images), trainer.global_step)
    if t.fid_every and (e % t.fid_every == 0 or last):
        evaluate(float(e))
    if e % t.checkpoint_every == 0 or last:
        save(f"epoch-{e:06d}")
    if on_epoch is not None and trainer.rt.is_main:
        on_epoch(run_dir)


def _on_nonfinite(trainer: Trainer, err: NonFiniteLoss, ckpt_dir: Path, metrics: Path,
                  log: Callable[[dict[str, Any]], None]) -> None:
    """Stop with one clear line, or (``train.on_nonfinite=rollback``) reload the last good
    checkpoint with both learning rates halved."""
    found = checkpoint.resume_checkpoints(ckpt_dir)
    last = found[-1][1] if found else None
    where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    if trainer.cfg.train.on_nonfinite == "stop" or last is None or \
            trainer.rollbacks >= MAX_ROLLBACKS:
        log({"kind": "end", "reason": "nonfinite", "step": err.step})
        raise GankitError(
            f"non-finite (NaN/inf) loss at step {err.step} (epoch {trainer.epoch + 1}); training "
            f"stopped and {where}. Lower optim.g_lr/optim.d_lr, or set "
            "train.on_nonfinite=rollback to retry from the checkpoint with halved learning rates"
        )
    rollbacks, scale = trainer.rollbacks + 1, trainer.lr_scale * 0.5
    trainer.load(last)
    trainer.rollbacks, trainer.lr_scale = rollbacks, scale
    if trainer.rt.is_main:
        _truncate_metrics(metrics, trainer.global_step)
    log({"kind": "rollback", "step": trainer.global_step, "bad_step": err.step,
         "lr_scale": scale, "checkpoint": last.name})
