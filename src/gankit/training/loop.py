"""The training loop (:class:`Trainer`), top to bottom: set up, (resume), iterations of GAN
steps, and at epoch ends the callbacks (sample grids, FID, plots, yours) and checkpoints.
Only rank 0 writes files.

Resume is exact (:mod:`gankit.training.state` holds everything a checkpoint needs), so
training continued from *any* checkpoint gives bit-identical weights on the CPU to training
that never stopped. Checkpoints are written at epoch ends
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
from gankit.data import Images, load_images
from gankit.errors import GankitError
from gankit.io import append_jsonl, fsync_dir, read_jsonl, write_json, write_jsonl, write_text
from gankit.training import checkpoint, tuner
from gankit.training.callbacks import (
    Callback,
    CriticSaturation,
    EveryEpoch,
    FIDTracking,
    SampleGrids,
    TensorBoardLog,
)
from gankit.training.interrupt import StopSignals
from gankit.training.record import run_record
from gankit.training.runtime import Runtime, all_reduce_max, setup
from gankit.training.state import NonFiniteLoss, TrainingState

# An evaluator maps a generator to {"fid": float, ...}; built by the metrics package.
Evaluator = Callable[[torch.nn.Module], dict[str, Any]]

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


__all__ = ["CLOCK_EVERY", "NonFiniteLoss", "Trainer", "TrainingStopped", "clock_due", "train"]


class TrainingStopped(Exception):
    """A signal stopped training after a checkpoint holding the exact position was written."""

    def __init__(self, signum: int, run_dir: Path, step: int) -> None:
        super().__init__(f"signal {signum} at step {step}")
        self.signum, self.run_dir, self.step = signum, run_dir, step


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
                         resize_filter=d.resize_filter, progress=progress, labels=d.labels)
    return images.select(d.limit) if d.limit else images


def fid_protocol(cfg: Config) -> dict[str, Any]:
    """What makes two FIDs comparable: the best checkpoint is only chosen within one protocol."""
    t = cfg.train
    rec = {"n": t.fid_n, "ref": t.fid_ref.removeprefix("cifar10:"), "mode": t.fid_mode}
    return rec | ({"best": t.fid_best} if t.fid_best != "fid" else {})  # old runs: unchanged

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


def _resume(trainer: TrainingState, run_dir: Path, cfg: Config, rt: Runtime) -> dict[str, Any]:
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


class Trainer:
    """Train a GAN in a run folder: ``Trainer(cfg).fit(run_dir)``.

    ``generator`` / ``discriminator``: your own networks (instances) instead of the config's;
    their classes and ``cfg.generator.kwargs`` / ``cfg.discriminator.kwargs`` are recorded so
    ``--resume``, ``generate``, ``fid RUN`` and the report rebuild them (docs/api.md).
    ``evaluator``: FID tracking (``train.fid_every``); ``callbacks``: your hooks
    (:class:`gankit.training.callbacks.Callback`), called after the built-in ones.

    The loop, top to bottom (:meth:`fit`): tune perf settings, build the state, create or
    resume the run folder, then iterations until the epochs or the budget run out, with
    epoch-end callbacks (grids, FID, plots) before each epoch checkpoint. Only rank 0 writes.
    """

    def __init__(self, cfg: Config, *, generator: torch.nn.Module | None = None,
                 discriminator: torch.nn.Module | None = None,
                 evaluator: Evaluator | None = None,
                 callbacks: list[Callback] | tuple[Callback, ...] = ()) -> None:
        if (generator is None) != (discriminator is None):
            raise GankitError("pass both generator and discriminator, or neither")
        self.models = None
        if generator is not None and discriminator is not None:
            cfg = record_models(cfg, generator, discriminator)
            self.models = (generator, discriminator)
        self.cfg = cfg
        self.evaluator = evaluator
        self.user_callbacks = list(callbacks)
        self.callbacks: list[Callback] = []
        self.state: TrainingState | None = None  # type: ignore[assignment]
        self.run_dir = Path()

    # -- what callbacks call ---------------------------------------------------------------
    def log(self, rec: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (rank 0) and hand it to ``on_log``."""
        if self.rt.is_main:
            rec["wall_time"] = self.state.elapsed()
            append_jsonl(self.run_dir / "metrics.jsonl", [rec])
            self.emit("on_log", rec)

    def emit(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback: on rank 0, except ``on_step`` (every rank) and
        callbacks that say ``all_ranks`` (sharded FID)."""
        everywhere = hook == "on_step" or self.rt.is_main
        for cb in self.callbacks:
            if everywhere or cb.all_ranks:
                getattr(cb, hook)(self, *args)

    # -- the loop -------------------------------------------------------------------------
    def fit(self, run_dir: str | Path, images: torch.Tensor | Images | None = None, *,
            resume: bool = False, progress: bool = True,
            data_dir: str | Path | None = None) -> TrainingState:
        """Train in ``run_dir`` (new, or continued from its newest checkpoint with ``resume``)
        on ``images`` (default: ``cfg.data``, from ``data_dir`` / ``$GANKIT_DATA_DIR``).

        Returns the final :class:`TrainingState`. Raises :class:`TrainingStopped` after
        SIGINT/SIGTERM (a checkpoint was written first).
        """
        self.run_dir = run_dir = Path(run_dir)
        if images is None:
            images = load_training_images(self.cfg, data_dir, progress=progress)
        data_info = images.info if isinstance(images, Images) else None
        pixels = images.pixels if isinstance(images, Images) else images
        labels = images.labels if isinstance(images, Images) else None
        classes = (data_info or {}).get("classes") if labels is not None else None
        rt = setup(self.cfg.perf)  # joins the process group under torchrun
        user_cfg = self.cfg  # what config.yaml keeps ("auto" stays auto; run.json has the choice)
        cfg, perf_record = _resolve_perf(user_cfg, run_dir, resume, rt)
        self.cfg, self.rt = cfg, setup(cfg.perf)
        # every config/data problem shows up before any file
        self.state = st = TrainingState(cfg, pixels, self.rt, models=self.models, labels=labels,
                                        classes=classes)
        self.callbacks = self._builtin_callbacks() + self.user_callbacks
        if resume:
            note = _resume(st, run_dir, user_cfg, self.rt)
        else:
            _prepare_run_dir(run_dir, user_cfg, self.rt, perf_record, data_info)
        t = cfg.train
        self.budget = t.minutes * 60 if t.minutes else None
        self._last_ckpt = {"time": time.monotonic(), "step": -1}
        self.signals = StopSignals()
        if self.budget is not None:  # from the checkpointed time, identical on every rank
            st.budget_used = min(1.0, st.elapsed_before / self.budget)
        pid_file = run_dir / "running.pid"  # lets `gankit runs` tell a live run from a dead one
        if self.rt.is_main:
            write_text(pid_file, f"{os.getpid()}\n")
        total = t.epochs * st.steps_per_epoch
        bar = tqdm(total=total, initial=min(st.global_step, total),
                   disable=not (progress and self.rt.is_main), unit="it", dynamic_ncols=True)
        reason = "epochs"
        try:
            self.emit("on_fit_start")
            if resume:
                self.log(note)
            with self.signals:
                reason = self._epochs(bar)
        finally:
            bar.close()
            if self.rt.is_main:
                pid_file.unlink(missing_ok=True)
            for cb in self.callbacks:
                if isinstance(cb, TensorBoardLog):
                    cb.close()
        self.log({"kind": "end", "reason": reason, "step": st.global_step,
                  "epoch": st.progress_epoch})
        self.emit("on_fit_end", reason)
        return st

    def _builtin_callbacks(self) -> list[Callback]:
        out: list[Callback] = [SampleGrids()]
        if self.cfg.discriminator.output == "tanh":
            out.append(CriticSaturation())
        if self.evaluator is not None:
            out.append(FIDTracking(self.evaluator))
        if self.cfg.train.tensorboard and self.rt.is_main:
            out.append(TensorBoardLog())
        return out

    def _epochs(self, bar: tqdm) -> str:
        """Epochs until the last one ends (``epochs``) or the budget runs out (``budget``)."""
        st, t = self.state, self.cfg.train
        if st.budget_used >= 1.0:  # resumed after its budget ran out: not one step more
            return "budget"
        while st.epoch < t.epochs:
            bar.set_description(f"epoch {st.epoch + 1}/{t.epochs}")
            try:
                why = st.run_iterations(self.log, bar, self.pause,
                                        lambda: self.emit("on_step"))
                if why is None:  # the epoch ended
                    self.emit("on_epoch_end")
                    if st.epoch % t.checkpoint_every == 0 or st.epoch == t.epochs:
                        self.checkpoint(f"epoch-{st.epoch:06d}")
                    if st.epoch < t.epochs:
                        why = self.pause()
                if why == "checkpoint":
                    self.checkpoint()
                elif why == "signal":
                    self.checkpoint()
                    self.log({"kind": "end", "reason": "signal", "step": st.global_step,
                              "epoch": st.progress_epoch})
                    raise TrainingStopped(self.signals.received or 0, self.run_dir, st.global_step)
                elif why == "budget":
                    self.emit("on_stop", "budget")
                    self.checkpoint()
                    return "budget"
            except NonFiniteLoss as err:
                self._on_nonfinite(err)
        return "epochs"

    def pause(self) -> str | None:
        """Whether to break off between two steps: ``signal``, ``budget``, ``checkpoint``
        (``train.checkpoint_minutes``) or None. Under DDP one all-reduce every CLOCK_EVERY
        steps makes all ranks agree (the slowest rank's clock decides)."""
        st, t = self.state, self.cfg.train
        if not clock_due(st.global_step, self.rt.world_size):
            return None
        reserve = st.last_eval_seconds if self.evaluator is not None else 0.0  # every rank's
        due = t.checkpoint_minutes > 0 and \
            time.monotonic() - self._last_ckpt["time"] >= 60 * t.checkpoint_minutes
        stop, used, due = all_reduce_max([float(self.signals.received is not None),
                                          st.elapsed() + reserve, float(due)], self.rt)
        if self.budget is not None:
            st.budget_used = min(1.0, used / self.budget)
        return ("signal" if stop else "budget" if self.budget is not None and used >= self.budget
                else "checkpoint" if due else None)

    def checkpoint(self, name: str | None = None) -> None:
        """Checkpoint ``name`` (default: a ``step-`` one) unless this step has one already."""
        st = self.state
        if self._last_ckpt["step"] == st.global_step:
            return
        name = name or f"step-{st.global_step:09d}"
        st.save(self.run_dir / "checkpoints", name)
        self._last_ckpt.update(time=time.monotonic(), step=st.global_step)
        self.emit("on_checkpoint", self.run_dir / "checkpoints" / f"{name}.safetensors")

    def _on_nonfinite(self, err: NonFiniteLoss) -> None:
        """Stop with one clear line, or (``train.on_nonfinite=rollback``) reload the last good
        checkpoint with both learning rates halved."""
        st, ckpt_dir = self.state, self.run_dir / "checkpoints"
        found = checkpoint.resume_checkpoints(ckpt_dir)
        last = found[-1][1] if found else None
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        if self.cfg.train.on_nonfinite == "stop" or last is None or st.rollbacks >= MAX_ROLLBACKS:
            self.log({"kind": "end", "reason": "nonfinite", "step": err.step})
            raise GankitError(
                f"non-finite (NaN/inf) loss at step {err.step} (epoch {st.epoch + 1}); training "
                f"stopped and {where}. Lower optim.g_lr/optim.d_lr, or set "
                "train.on_nonfinite=rollback to retry from the checkpoint with halved learning "
                "rates")
        rollbacks, scale = st.rollbacks + 1, st.lr_scale * 0.5
        st.load(last)
        st.rollbacks, st.lr_scale = rollbacks, scale
        if self.rt.is_main:
            _truncate_metrics(self.run_dir / "metrics.jsonl", st.global_step)
        self.log({"kind": "rollback", "step": st.global_step, "bad_step": err.step,
                  "lr_scale": scale, "checkpoint": last.name})


def record_models(cfg: Config, g: torch.nn.Module, d: torch.nn.Module) -> Config:
    """``cfg`` with ``arch`` naming the classes of ``g`` and ``d`` and G's ``latent_dim``, after
    checking that the recorded class and kwargs rebuild networks of the same shapes (else a
    run could be trained but never reloaded)."""
    from gankit.models import build_discriminator, build_generator
    from gankit.models.registry import class_path

    if not isinstance(getattr(g, "latent_dim", None), int):
        raise GankitError(f"generator {type(g).__qualname__} has no int attribute latent_dim "
                          "(the model contract, docs/api.md)")
    raw = cfg.model_dump(mode="json")
    raw["generator"].update(arch=class_path(g), latent_dim=g.latent_dim)
    raw["discriminator"]["arch"] = class_path(d)
    new = validate(raw)
    r, n_cls = new.data.resolution, new.cond.n_classes
    rebuilt = {"generator": build_generator(new.generator, resolution=r, n_classes=n_cls),
               "discriminator": build_discriminator(new.discriminator, resolution=r,
                                                    n_classes=n_cls, cond=new.cond.discriminator)}
    for kind, net in (("generator", g), ("discriminator", d)):
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        again = {k: tuple(v.shape) for k, v in rebuilt[kind].state_dict().items()}
        if shapes != again:
            raise GankitError(
                f"{type(net).__qualname__}(**{kind}.kwargs={getattr(new, kind).kwargs}) builds "
                f"a network of other shapes than the {kind} passed in; put its constructor "
                f"arguments in cfg.{kind}.kwargs so the run can be reloaded")
    return new


def train(cfg: Config, run_dir: Path, images: torch.Tensor | Images, *, resume: bool = False,
          progress: bool = True, evaluator: Evaluator | None = None,
          on_epoch: Callable[[Path], None] | None = None,
          callbacks: list[Callback] | tuple[Callback, ...] = ()) -> TrainingState:
    """``Trainer(cfg, ...).fit(run_dir, images)``: the function form the CLI, study and sweep
    use; ``on_epoch(run_dir)`` runs at every epoch end (the CLI's plots)."""
    cbs = list(callbacks) + ([EveryEpoch(on_epoch)] if on_epoch is not None else [])
    return Trainer(cfg, evaluator=evaluator, callbacks=cbs).fit(
        run_dir, images, resume=resume, progress=progress)
