"""One GAN iteration: ``n_dis`` discriminator updates, then one generator update.

Kept separate from the epoch loop so the benchmark can time exactly the step the trainer
runs. Speed choices that do not change the maths: D sees real and fake in one batch when it
has no batch norm (identical result, one larger matmul); G's update back-propagates only
into G's parameters (``inputs=``), skipping D's weight gradients; noise is drawn in place
into pre-allocated buffers; losses are accumulated on the device and read only when logged.
One that does, chosen in the config: with ``optim.g_fake=reuse`` the G step back-propagates
through the last D step's fakes (as pytorch/examples' DCGAN does) instead of running G on new
latents, which saves one G forward per iteration.

Under DDP every rank draws the latents of the *whole* global batch from one shared generator
and uses its own slice, so W ranks at batch b take the same steps as one process at batch
W*b (up to float summation order) for models without batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import Config
from gankit.data.augment import DiffAugment
from gankit.losses import PenaltyInputs, build_loss, clip_weights
from gankit.models.layers import call
from gankit.models.registry import has_batchnorm
from gankit.training.runtime import Runtime, all_reduce_mean

SATURATED = 0.99  # |tanh| above which a critic's output counts as pinned (tanh' < 0.02)


def _adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Fused Adam (one kernel for all parameters) where this build and device have it, else
    the multi-tensor one. ``params`` is made a list first: a failed constructor consumes a
    ``parameters()`` generator, which once left the fallback with no parameters at all."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


def unwrap(m: nn.Module) -> nn.Module:
    """The plain module inside DDP and ``torch.compile`` wrappers (in any order)."""
    while True:
        if isinstance(m, nn.parallel.DistributedDataParallel):
            m = m.module
        elif hasattr(m, "_orig_mod"):  # torch.compile's OptimizedModule
            m = m._orig_mod
        else:
            return m


class GANStep:
    """Holds G, D, their optimizers and noise buffers; ``__call__`` runs one iteration.

    ``g`` and ``d`` are the plain modules; the step wraps them in DDP (when the runtime has
    several ranks) and ``torch.compile`` (``compile=True``) itself, so callers never need to
    look through wrappers.
    """

    def __init__(
        self, cfg: Config, g: nn.Module, d: nn.Module, rt: Runtime, noise: torch.Generator,
        compile: bool = False,
    ) -> None:
        self.cfg, self.rt, self.noise = cfg, rt, noise
        self.loss = build_loss(cfg.loss)
        self.penalties = self.loss.penalties
        self.g_plain, self.d_plain = g, d
        if rt.world_size > 1:
            ddp = nn.parallel.DistributedDataParallel
            g, d = ddp(g), ddp(d)
        # The G step uses the plain D: D's weights get no gradient there, so no DDP all-reduce.
        self.d_for_g: nn.Module = self.d_plain
        if compile:
            # GP and R1 back-propagate twice through D, which aot_autograd cannot do: with
            # them only G (and the G step's D forward, a single backward) compile.
            g, self.d_for_g = torch.compile(g), torch.compile(self.d_plain)
            if not any(p.double_backward for p in self.penalties):
                d = torch.compile(d)
        self.g, self.d = g, d
        o = cfg.optim
        self.g_opt = _adam(self.g_plain.parameters(), o.g_lr, o.g_betas)
        self.d_opt = _adam(self.d_plain.parameters(), o.d_lr, o.d_betas)
        self._base_lr = {id(self.g_opt): o.g_lr, id(self.d_opt): o.d_lr}
        fp16 = rt.dtype == torch.float16
        self.g_scaler = torch.amp.GradScaler(rt.device.type, enabled=fp16)
        self.d_scaler = torch.amp.GradScaler(rt.device.type, enabled=fp16)
        b = cfg.train.batch_size
        self.n_real = cfg.train.n_real
        latent = cfg.generator.latent_dim
        w = rt.world_size
        self._z_d = torch.empty(w * self.n_real, latent, device=rt.device)
        self._z_g = torch.empty(w * b, latent, device=rt.device)
        self._slice_d = slice(rt.rank * self.n_real, (rt.rank + 1) * self.n_real)
        self._slice_g = slice(rt.rank * b, (rt.rank + 1) * b)
        self.concat_d = not has_batchnorm(self.d_plain)
        self.reuse_fake = o.g_fake == "reuse"
        self._kept_fake: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # Class-conditional: fake labels are drawn from the shared noise generator (so they
        # are in the checkpointed RNG state and every rank takes its slice, like the latents).
        self.n_classes = cfg.cond.n_classes
        self.ac = bool(self.n_classes) and cfg.cond.discriminator == "ac"
        self.ac_weight = cfg.cond.ac_weight  # used where self.ac
        self.label_probs: torch.Tensor | None = None  # fake_labels=data: the class frequencies
        if self.n_classes:
            self._y_d = torch.empty(w * self.n_real, dtype=torch.long, device=rt.device)
            self._y_g = torch.empty(w * b, dtype=torch.long, device=rt.device)
        self.extra_names = [p.name for p in self.penalties] + (["ac"] if self.ac else [])
        # D's mean score on real and fake (after tanh where D has it; the logit for sigmoid)
        # and, for a tanh critic, the fraction of its outputs at |D| > 0.99, where tanh' < 0.02
        # and neither network learns (issue 21: the design-2 critic pinned there, unnoticed).
        self.tanh_critic = cfg.discriminator.output == "tanh"
        self.extra_names += ["d_real", "d_fake"] + (["d_saturated"] if self.tanh_critic else [])
        a = cfg.augment
        self.augment = DiffAugment(a.policy, a.translation, a.cutout)
        # sums of D's loss on real and on fake, G's loss, then extra_names in order
        self.stats = torch.zeros(3 + len(self.extra_names), device=rt.device)
        self.count = 0
        self.d_updates = 0  # D updates so far (lazy penalties count them)
        # First step whose losses were not finite (-1: none); kept on the device, no sync.
        self._step_no = torch.zeros((), dtype=torch.long, device=rt.device)
        self.first_nonfinite = torch.full((), -1, dtype=torch.long, device=rt.device)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.rt.channels_last else x

    def _d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees: the image after DiffAugment (if on), in D's memory format."""
        return self._fmt(self.augment(x) if self.augment else x)

    def _fake_labels(self, buf: torch.Tensor, part: slice) -> torch.Tensor:
        """Labels for generated images of a conditional run: uniform, or drawn by the data's
        class frequencies (``cond.fake_labels=data``)."""
        if self.label_probs is not None:
            buf.copy_(torch.multinomial(self.label_probs, len(buf), replacement=True,
                                        generator=self.noise))
        else:
            buf.random_(0, self.n_classes, generator=self.noise)
        return buf[part]

    @staticmethod
    def _scores(d: nn.Module, x: torch.Tensor, y: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's scores (fp32) and, for AC-GAN, its class logits (fp32)."""
        out = call(d, x, y)
        if isinstance(out, tuple):
            return out[0].float(), out[1].float()
        return out.float(), None

    def d_step(self, real: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
               keep_fake: bool = False) -> torch.Tensor:
        """One D update on a real batch (with its labels when conditional). ``keep_fake``:
        G's forward keeps its graph and the fakes are kept for the G step
        (``optim.g_fake=reuse``); D itself always sees them detached."""
        real, real_y = real if isinstance(real, tuple) else (real, None)
        z = self._z_d.normal_(generator=self.noise)[self._slice_d]
        fake_y = self._fake_labels(self._y_d, self._slice_d) if self.n_classes else None
        with torch.set_grad_enabled(keep_fake), self.rt.autocast():
            fake = call(self.g, z, fake_y)
        if keep_fake:
            self._kept_fake = (fake, fake_y)
        real = self._d_input(real)
        fake = self._d_input(fake.detach().to(real.dtype))
        with self.rt.autocast():
            if self.concat_d:
                y = None if real_y is None else torch.cat([real_y, fake_y])
                out, logits = self._scores(self.d, torch.cat([real, fake]), y)
                out_real, out_fake = out[: len(real)], out[len(real) :]
                lg_real, lg_fake = (None, None) if logits is None else \
                    (logits[: len(real)], logits[len(real) :])
            else:
                out_real, lg_real = self._scores(self.d, real, real_y)
                out_fake, lg_fake = self._scores(self.d, fake, fake_y)
        loss_real, loss_fake = self.loss.d_loss(out_real, out_fake)
        loss = loss_real + loss_fake
        values = []
        if self.penalties:
            # fp16: the AMP recipe scales the output before the input gradient and unscales
            # that gradient, so small gradients survive the half-precision pass. A
            # conditional D is scored with the real labels (for GP's interpolates too).
            inputs = PenaltyInputs(lambda x: self._scores(self.d, x, real_y)[0], real, fake,
                                   out_real, out_fake, self.d_updates,
                                   self.d_scaler.get_scale() if self.d_scaler.is_enabled() else 1.0,
                                   distributed=self.rt.world_size > 1, tanh=self.tanh_critic)
            for p in self.penalties:
                with self.rt.autocast():
                    v = p(inputs).float()
                loss = loss + p.weight * v
                values.append(v.detach())
        if self.ac:  # AC-GAN: D classifies real and generated images
            ce = F.cross_entropy(lg_real, real_y) + F.cross_entropy(lg_fake, fake_y)
            loss = loss + self.ac_weight * ce
            values.append(ce.detach())
        with torch.no_grad():
            values += [out_real.mean(), out_fake.mean()]
            if self.tanh_critic:
                values.append((torch.cat([out_real, out_fake]).abs() > SATURATED).float().mean())
        self.d_updates += 1
        self.d_opt.zero_grad(set_to_none=True)
        self.d_scaler.scale(loss).backward()
        self.d_scaler.step(self.d_opt)
        self.d_scaler.update()
        if self.cfg.loss.clip:
            clip_weights(self.d, self.cfg.loss.clip)
        return torch.stack([loss_real.detach(), loss_fake.detach(), *values])

    def g_step(self) -> torch.Tensor:
        kept, self._kept_fake = self._kept_fake, None
        with self.rt.autocast():
            if kept is None:
                z = self._z_g.normal_(generator=self.noise)[self._slice_g]
                fake_y = self._fake_labels(self._y_g, self._slice_g) if self.n_classes else None
                fake = call(self.g, z, fake_y)
            else:
                fake, fake_y = kept
            out, logits = self._scores(self.d_for_g, self._d_input(fake), fake_y)
        loss = self.loss.g_loss(out)
        if self.ac:  # G makes images D classifies as their labels
            loss = loss + self.ac_weight * F.cross_entropy(logits, fake_y)
        self.g_opt.zero_grad(set_to_none=True)
        self.g_scaler.scale(loss).backward(inputs=list(self.g_plain.parameters()))
        self.g_scaler.step(self.g_opt)
        self.g_scaler.update()
        return loss.detach()

    def __call__(self, reals: list[torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One iteration on ``n_dis`` real batches (``(images, labels)`` when conditional);
        losses are added to ``self.stats``."""
        last = len(reals) - 1
        d_stats = torch.stack([self.d_step(r, keep_fake=self.reuse_fake and i == last)
                               for i, r in enumerate(reals)]).mean(0)
        g = self.g_step()
        losses = torch.cat([d_stats[:2], g.view(1), d_stats[2:]])
        self.stats += losses
        self.count += 1
        self._step_no += 1
        bad = (self.first_nonfinite < 0) & ~torch.isfinite(losses).all()
        self.first_nonfinite = torch.where(bad, self._step_no, self.first_nonfinite)

    def scale_lr(self, scale: float) -> None:
        """Set both learning rates to ``scale`` x their configured values."""
        for opt in (self.g_opt, self.d_opt):
            for group in opt.param_groups:
                group["lr"] = self._base_lr[id(opt)] * scale

    def nonfinite_step(self) -> int | None:
        """The first iteration (1-based, counted by this object) with a NaN/inf loss (a sync)."""
        s = int(self.first_nonfinite)
        return s if s >= 0 else None

    def pop_stats(self) -> dict[str, float]:
        """Mean losses since the last call, averaged over ranks (one host sync)."""
        vals = all_reduce_mean(self.stats / max(self.count, 1), self.rt).tolist()
        self.stats.zero_()
        self.count = 0
        out = {"d_loss_real": vals[0], "d_loss_fake": vals[1], "g_loss": vals[2]}
        if self.loss.wasserstein:
            out["wasserstein"] = -(vals[0] + vals[1])  # E[D(real)] - E[D(fake)]
        out.update(dict(zip(self.extra_names, vals[3:], strict=True)))
        return out

    def state_dict(self) -> dict:
        """Everything needed to continue exactly, the partial logging window included."""
        return {
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "g_scaler": self.g_scaler.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
            "stats": self.stats.detach().cpu().clone(),
            "count": self.count,
            "step_no": int(self._step_no),
            "d_updates": self.d_updates,
            "penalties": [p.state_dict() for p in self.penalties],
        }

    def load_state_dict(self, state: dict) -> None:
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.g_scaler.load_state_dict(state["g_scaler"])
        self.d_scaler.load_state_dict(state["d_scaler"])
        stats = state["stats"]
        # Older layouts (a GP slot always, or no D-score slots): the three losses carry over,
        # the extra slots are truncated or zero-padded, so that checkpoint's partial logging
        # window may log wrong extras once (the weights and RNG stay exact).
        if stats.numel() != self.stats.numel():
            stats = stats[:3].tolist() + stats[3:].tolist()[: self.stats.numel() - 3]
            stats = torch.tensor(stats + [0.0] * (self.stats.numel() - len(stats)))
        self.stats.copy_(stats)
        self.count = int(state["count"])
        self._step_no.fill_(int(state["step_no"]))
        self.d_updates = int(state.get("d_updates", int(state["step_no"]) * self.cfg.optim.n_dis))
        for p, ps in zip(self.penalties, state.get("penalties", [{}] * len(self.penalties)),
                         strict=True):
            p.load_state_dict(ps)
        self.first_nonfinite.fill_(-1)
