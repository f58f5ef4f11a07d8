"""Callbacks: what the training loop calls, and when (PyTorch Lightning's idea, gankit's hooks).

Order within one run (rank 0 only, except ``on_step``, which every rank calls, and callbacks
that set ``all_ranks``):

- ``on_fit_start(trainer)`` once, after the run folder exists and a resume has loaded;
- ``on_step(trainer)`` after every iteration (n_dis D updates + one G update); keep it cheap
  and free of host syncs: it runs inside the hot loop;
- ``on_log(trainer, record)`` for every record written to ``metrics.jsonl`` (a tanh critic's
  ``CriticSaturation`` warns from here when D is pinned);
- ``on_epoch_end(trainer)`` at every epoch end, *before* that epoch's checkpoint, so what a
  callback changes in the trainer's state (the best FID) is in the checkpoint;
- ``on_stop(trainer, reason)`` when training stops before its last epoch for ``budget``
  (``train.minutes``), before the final checkpoint;
- ``on_eval(trainer, result)`` after each FID evaluation, with its record;
- ``on_images(trainer, tag, images)`` when a sample grid is made (uint8 N x H x W x 3);
- ``on_checkpoint(trainer, path)`` after a checkpoint is complete on disk;
- ``on_fit_end(trainer, reason)`` once, after the last checkpoint (reason: epochs or budget).

The built-in grids, FID tracking, TensorBoard and plots are callbacks too; the clock, signals
and checkpointing stay in the trainer because under DDP they are decided together in one
collective every ``CLOCK_EVERY`` steps, and resume exactness depends on their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gankit.reports.images import make_grid, save_grid, to_uint8
from gankit.training import checkpoint

if TYPE_CHECKING:
    from gankit.training.loop import Trainer


class Callback:
    """Subclass and override the hooks you need; every hook is a no-op here.

    ``all_ranks``: under DDP, call this callback's hooks on every rank, not on rank 0 alone
    (for work shared out over the ranks, such as sharded FID; mind the collectives).
    """

    all_ranks = False

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer) -> None: ...
    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: Trainer) -> None: ...
    def on_stop(self, trainer: Trainer, reason: str) -> None: ...
    def on_eval(self, trainer: Trainer, result: dict[str, Any]) -> None: ...
    def on_images(self, trainer: Trainer, tag: str, images: Any) -> None: ...
    def on_checkpoint(self, trainer: Trainer, path: Path) -> None: ...
    def on_fit_end(self, trainer: Trainer, reason: str) -> None: ...


class SampleGrids(Callback):
    """A grid of the fixed latents' samples every ``train.sample_every`` epochs, at the last
    epoch, and when a budget stops the run (``samples/final-step-N.png``)."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        t, e = trainer.cfg.train, trainer.state.epoch
        if e % t.sample_every == 0 or e == t.epochs:
            images = to_uint8(trainer.state.sample_grid())
            save_grid(trainer.run_dir / "samples" / f"epoch-{e:06d}.png", images,
                      trainer.state.grid_cols)
            trainer.emit("on_images", "samples", images)

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        if reason == "budget":
            images = to_uint8(trainer.state.sample_grid())
            save_grid(trainer.run_dir / "samples" / f"final-step-{trainer.state.global_step:09d}.png",
                      images, trainer.state.grid_cols)


class FIDTracking(Callback):
    """FID every ``train.fid_every`` epochs, at the last one and when a budget stops the run,
    with the EMA generator where there is one; the best (by ``train.fid_best``: FID, or
    intra-FID) is kept as ``best.safetensors`` and in the training state (so it survives a
    resume).

    A ``sharded`` evaluator (:class:`gankit.metrics.training.TrainingFID`) runs on every DDP
    rank, each on its share of the samples, and returns the record on rank 0 only; any
    other evaluator runs on rank 0 alone."""

    def __init__(self, evaluator: Callable[..., dict[str, Any] | None]) -> None:
        self.evaluator = evaluator
        self.all_ranks = bool(getattr(evaluator, "sharded", False))
        self.last_step = -1

    def on_epoch_end(self, trainer: Trainer) -> None:
        t, e = trainer.cfg.train, trainer.state.epoch
        if t.fid_every and (e % t.fid_every == 0 or e == t.epochs):
            self.evaluate(trainer, float(e))

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        if reason == "budget":
            self.evaluate(trainer, trainer.state.progress_epoch)

    def evaluate(self, trainer: Trainer, label: float) -> None:
        from gankit.training.loop import fid_protocol

        st, cfg = trainer.state, trainer.cfg
        if not cfg.train.fid_every or self.last_step == st.global_step:
            return
        t0 = time.monotonic()
        rt = trainer.rt
        res = (self.evaluator(st.g_eval, rt.rank, rt.world_size) if self.all_ranks
               else self.evaluator(st.g_eval))
        st.last_eval_seconds = time.monotonic() - t0
        self.last_step = st.global_step
        if not rt.is_main:  # a shard's share is done; rank 0 keeps the record and the best
            return
        key = cfg.train.fid_best  # fid, or intra_fid for a conditional run that asks
        if not st.best or res[key] < st.best.get(key, float("inf")):
            st.best = {"fid": res["fid"], "epoch": label, "step": st.global_step,
                       "protocol": fid_protocol(cfg)} | ({key: res[key]} if key != "fid" else {})
            checkpoint.save(trainer.run_dir / "checkpoints" / "best.safetensors", cfg, st.epoch,
                            st.g, st.d, extra_meta={"fid": res}, step=st.global_step,
                            extra_modules=st.extra_modules())
        rec = {"kind": "fid", "epoch": label, "step": st.global_step, **res,
               "eval_seconds": st.last_eval_seconds, "best_fid": st.best["fid"],
               "best_epoch": st.best["epoch"]} | (
                   {f"best_{key}": st.best[key]} if key != "fid" else {})
        trainer.log(rec)
        trainer.emit("on_eval", rec)


class CriticSaturation(Callback):
    """Warns, once per episode, when a tanh critic is pinned: ``d_saturated`` (the fraction of
    D's outputs with |D| > 0.99) at or above ``threshold`` in ``windows`` log records in a row.
    There tanh' < 0.02, D stops learning and G gets almost no gradient; reference design 2's
    presets sat there from step 100 with nothing in the log to say so (issue 21). The warning
    is a ``{"kind": "warning", "what": "critic_saturated"}`` record in ``metrics.jsonl`` and
    one line on stderr; it re-arms when the fraction falls below half the threshold."""

    def __init__(self, threshold: float = 0.9, windows: int = 3) -> None:
        self.threshold, self.windows = threshold, windows
        self.streak, self.warned = 0, False

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        sat = record.get("d_saturated") if record.get("kind") == "step" else None
        if sat is None:
            return
        if sat < self.threshold / 2:
            self.streak, self.warned = 0, False
        self.streak = self.streak + 1 if sat >= self.threshold else 0
        if self.streak >= self.windows and not self.warned:
            self.warned = True
            from gankit.training.step import SATURATED

            msg = (f"the tanh critic is pinned: {sat:.0%} of D's outputs have |D| > {SATURATED} "
                   f"(D(real) {record['d_real']:+.3f}, D(fake) {record['d_fake']:+.3f}) for "
                   f"{self.windows} log windows up to step {record['step']}; tanh' < 0.02 there, "
                   "so neither network learns (docs/design2.md: what bounds a tanh "
                   "critic)")
            trainer.log({"kind": "warning", "what": "critic_saturated", "step": record["step"],
                         "epoch": record["epoch"], "message": msg})
            click.echo(f"warning: {msg}", err=True)


class TensorBoardLog(Callback):
    """Every metrics record and sample grid to ``RUN/tensorboard`` (``train.tensorboard``)."""

    def __init__(self) -> None:
        from gankit.training.tensorboard import TensorBoard

        TensorBoard.check()  # a missing package is an error before any file is written
        self.board: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from gankit.training.tensorboard import TensorBoard

        self.board = TensorBoard(trainer.run_dir)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.board is not None:
            self.board.log(record)

    def on_images(self, trainer: Trainer, tag: str, images: Any) -> None:
        if self.board is not None:
            self.board.image(tag, make_grid(images, trainer.state.grid_cols),
                             trainer.state.global_step)

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        self.close()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None


class EveryEpoch(Callback):
    """Call ``fn(run_dir)`` at every epoch end and when a budget stops the run (the CLI's
    plots: they read ``metrics.jsonl``, so they go after the FID record)."""

    def __init__(self, fn: Callable[[Path], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.fn(trainer.run_dir)

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        if reason == "budget":
            self.fn(trainer.run_dir)
