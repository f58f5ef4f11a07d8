"""Run configuration: typed, validated, loaded from preset YAML files plus ``--set`` overrides.

Presets live in ``gankit/presets/*.yaml`` and are complete configs a user can copy and edit.
Validation is done by pydantic (unknown keys are rejected, types and ranges checked); any
failure becomes one :class:`GankitError` line naming the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gankit.errors import GankitError

BASE_RESOLUTION = 32  # the resolution presets describe (CIFAR-10's)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    dataset: str = Field("cifar10", min_length=1, description=(
        "cifar10, cifar100, a folder of images, a .zip of images or an .npz/.npy uint8 array"))
    split: Literal["train", "test"] = Field("train", description="the CIFAR split to train on")
    limit: int | None = Field(None, ge=1, description="use only the first N images (short runs)")
    hflip: bool = False
    resolution: Literal[32, 64, 128] = Field(32, description=(
        "image size; presets describe 32-px networks and gain stages for 64 / 128"))
    resize_filter: Literal["lanczos", "bicubic", "bilinear", "box", "nearest"] = Field(
        "lanczos", description="PIL filter that resizes (after a center crop) images of "
        "another size")
    labels: Literal["fine", "coarse"] = Field(
        "fine", description="CIFAR-100's labels for class-conditional training: the 100 fine "
        "classes or the 20 coarse superclasses")


def custom_arch(arch: str) -> bool:
    """Whether ``arch`` names a network of the user's (not ``dcgan`` / ``resnet``)."""
    return arch not in ("dcgan", "resnet")


def _check_arch(kind: str, arch: str) -> str:
    """``dcgan``, ``resnet``, a registered name or an import path ``module:Class`` /
    ``file.py:Class``; a relative file path is made absolute so the run finds it again."""
    where, sep, attr = arch.rpartition(":")
    if sep and where.endswith(".py") and not Path(where).is_absolute():
        return f"{Path(where).resolve()}:{attr}"
    return arch


class GeneratorConfig(_Strict):
    arch: str = Field(
        "dcgan", min_length=1, description="dcgan: transposed convs; resnet: SNGAN/BigGAN-CIFAR "
        "up-blocks; or your own: a registered name or an import path my_pkg.nets:MyG / "
        "nets.py:MyG (docs/api.md); the fields below then do not apply, kwargs does")
    kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "keyword arguments of a custom arch's constructor"))
    latent_dim: int = Field(100, ge=1, le=4096)
    base_channels: int = Field(256, ge=1, description="channels of the 4x4 dense projection")
    widths: list[int] = Field(default_factory=lambda: [128, 128, 128], min_length=1)
    strides: list[int] | None = Field(
        None, description="per-layer (dcgan arch): 2 upsamples (transposed conv), 1 keeps the "
        "size (an odd-kernel conv: reference design 2's extra same-size layer); default all 2")
    kernel_size: int = Field(4, ge=2, le=8)
    norm: Literal["batch", "none"] = "none"
    activation: Literal["leakyrelu", "relu", "none"] = "leakyrelu"
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0)
    spectral_norm: bool = False
    attention: list[int] = Field(default_factory=list, description="resolutions with attention")
    attention_pool: bool = False
    out_kernel: int = Field(3, ge=1, le=7)
    init: Literal["default", "dcgan", "xavier", "orthogonal"] = Field(
        "default", description="weight init: PyTorch's, N(0, 0.02) (DCGAN), xavier (SNGAN), "
        "orthogonal (BigGAN)")

    @model_validator(mode="after")
    def _check(self) -> GeneratorConfig:
        self.__dict__["arch"] = _check_arch("generator", self.arch)
        if self.kwargs and not custom_arch(self.arch):
            raise ValueError("generator.kwargs applies to a custom generator.arch only")
        if self.out_kernel % 2 == 0:
            raise ValueError(f"generator.out_kernel must be odd (got {self.out_kernel}): an even "
                             "kernel with 'same' padding changes the image size")
        if any(w < 1 for w in self.widths):
            raise ValueError("generator.widths must be positive")
        if self.strides is not None:
            if len(self.strides) != len(self.widths) or any(s not in (1, 2) for s in self.strides):
                raise ValueError("generator.strides needs one entry (1 or 2) per entry of widths")
            if self.arch == "resnet":
                raise ValueError("generator.strides applies to arch=dcgan only: every ResNet "
                                 "up-block upsamples")
        return self

    def layer_strides(self) -> list[int]:
        return list(self.strides) if self.strides else [2] * len(self.widths)

    def resolutions(self) -> list[int]:
        """The feature-map size after each layer (from the 4x4 projection)."""
        out, res = [], 4
        for s in self.layer_strides():
            res *= s
            out.append(res)
        return out


class DiscriminatorConfig(_Strict):
    arch: str = Field(
        "dcgan", min_length=1, description="dcgan: plain convs; resnet: optimized first block + "
        "res-blocks; or your own, as generator.arch")
    kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "keyword arguments of a custom arch's constructor"))
    widths: list[int] = Field(default_factory=lambda: [64, 128, 128, 256], min_length=1)
    strides: list[int] = Field(default_factory=lambda: [1, 2, 2, 2], min_length=1)
    kernel_size: int = Field(3, ge=1, le=8)
    kernels: list[int] | None = Field(
        None, description="per-layer kernel sizes (dcgan arch), e.g. SNGAN's [3, 4, 3, 4, ...]")
    norm: Literal["batch", "none"] = "none"
    norms: list[Literal["batch", "none"]] | None = Field(
        None, description="per-layer norm (dcgan arch), e.g. [none, batch, batch] for Radford "
        "et al.'s D without batch norm on its input layer; overrides norm")
    norm_affine: bool = Field(
        True, description="batch norm's learnable scale and shift in D; false bounds a "
        "spectrally-normalised critic's pre-activation (head_gain 1/sqrt(fan_in): RMS <= 1), "
        "which the affine scale escapes (it grew to 5x in 12k sndcgan steps); measured "
        "worse FID, so no preset sets it (docs/design2.md)")
    activation: Literal["leakyrelu", "relu"] = "leakyrelu"
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0)
    spectral_norm: bool = False
    attention: list[int] = Field(default_factory=list)
    attention_pool: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the head "
                           "(the Keras DCGAN of reference design 1 uses 0.4)")
    output: Literal["sigmoid", "linear", "tanh"] = "sigmoid"
    head_gain: float | Literal["inv_sqrt_fan_in"] = Field(
        1.0, description="multiplies the head's pre-activation before the output function; "
        "inv_sqrt_fan_in (1/64 for 4,096 features) keeps a spectrally-normalised head over "
        "batch-normed features out of tanh's saturation (docs/design2.md)")
    init: Literal["default", "dcgan", "xavier", "orthogonal"] = Field(
        "default", description="weight init (see generator.init)")

    @model_validator(mode="after")
    def _check(self) -> DiscriminatorConfig:
        self.__dict__["arch"] = _check_arch("discriminator", self.arch)
        if self.kwargs and not custom_arch(self.arch):
            raise ValueError("discriminator.kwargs applies to a custom discriminator.arch only")
        if len(self.widths) != len(self.strides):
            raise ValueError("discriminator.widths and discriminator.strides differ in length")
        if self.arch == "resnet" and (self.kernel_size != 3 or self.kernels is not None
                                      or self.norms is not None):
            raise ValueError("discriminator.kernel_size / kernels / norms apply to arch=dcgan "
                             "only: the ResNet blocks use 3x3 convs and discriminator.norm")
        if self.kernels is not None and len(self.kernels) != len(self.widths):
            raise ValueError("discriminator.kernels needs one entry per entry of widths")
        for k, s in zip(self.layer_kernels(), self.strides, strict=True):
            if not 1 <= k <= 8:
                raise ValueError(f"discriminator kernel sizes must be in 1..8 (got {k})")
            if k % 2 == 0 and s == 1:
                field = "kernels" if self.kernels else "kernel_size"
                raise ValueError(f"discriminator.{field} must be odd at stride 1 (got {k}): an even "
                                 "kernel with 'same' padding changes the feature-map size")
        if any(w < 1 for w in self.widths) or any(s not in (1, 2) for s in self.strides):
            raise ValueError("discriminator.widths must be positive and strides 1 or 2")
        if self.norms is not None and len(self.norms) != len(self.widths):
            raise ValueError("discriminator.norms needs one entry per entry of widths")
        if isinstance(self.head_gain, float) and self.head_gain <= 0:
            raise ValueError(f"discriminator.head_gain must be positive (got {self.head_gain})")
        return self

    def layer_norms(self) -> list[str]:
        return list(self.norms) if self.norms else [self.norm] * len(self.widths)

    def layer_kernels(self) -> list[int]:
        return list(self.kernels) if self.kernels else [self.kernel_size] * len(self.widths)

    def resolutions(self, resolution: int) -> list[int]:
        """The feature-map size after each layer, for an input of ``resolution`` pixels."""
        out = []
        for s in self.strides:
            resolution //= s
            out.append(resolution)
        return out


BUILTIN_LOSSES = ("bce", "wasserstein", "hinge", "wgan-gp")


class LossConfig(_Strict):
    name: str = Field("bce", min_length=1, description=(
        "bce, wasserstein, hinge, wgan-gp, a registered loss, or your own as an import path "
        "my_pkg.losses:MyLoss / losses.py:MyLoss (docs/api.md)"))
    kwargs: dict[str, Any] = Field(default_factory=dict, description=(
        "keyword arguments of a custom loss's constructor"))
    g_mode: Literal["nonsaturating", "minimax"] = "nonsaturating"
    clip: float | None = Field(None, gt=0, description="WGAN weight clipping of D's parameters")
    gp_weight: float = Field(10.0, ge=0)
    r1_gamma: float = Field(0.0, ge=0, description=(
        "R1 penalty (gamma/2) E||grad D(real)||^2 (Mescheder et al. 2018); 0: off"))
    r1_every: int = Field(16, ge=1, description="lazy R1: every N-th D update, times N")
    lecam_weight: float = Field(0.0, ge=0, description=(
        "LeCam regulariser weight (Tseng et al. 2021; 0.3 in their CIFAR runs); 0: off"))
    lecam_decay: float = Field(0.99, ge=0.0, lt=1.0, description="LeCam anchors' EMA decay")
    drift_weight: float = Field(0.0, ge=0, description=(
        "drift penalty weight on D's pre-activation, E[s_real^2] + E[s_fake^2] (atanh of a tanh "
        "critic's score; Karras et al. 2018 use 0.001 on real scores); keeps a tanh critic off "
        "its bounds; 0: off"))

    @model_validator(mode="after")
    def _check(self) -> LossConfig:
        self.__dict__["name"] = _check_arch("loss", self.name)
        if self.kwargs and self.name in BUILTIN_LOSSES:
            raise ValueError("loss.kwargs applies to a custom loss.name only")
        return self


class OptimConfig(_Strict):
    g_lr: float = Field(2e-4, gt=0, le=1)
    d_lr: float = Field(2e-4, gt=0, le=1)
    g_betas: tuple[float, float] = (0.5, 0.999)
    d_betas: tuple[float, float] = (0.5, 0.999)
    n_dis: int = Field(1, ge=1, le=100)
    g_fake: Literal["fresh", "reuse"] = Field(
        "fresh", description="fresh: the G step draws new latents; reuse: it back-propagates "
        "through the fakes of the last D step (pytorch/examples DCGAN), saving one G forward")
    schedule: Literal["constant", "linear"] = Field(
        "constant", description="linear: both learning rates decay linearly to 0 at the last "
        "step, or at the end of train.minutes when that comes first")
    decay_start: float = Field(
        0.0, ge=0.0, lt=1.0, description="linear: the fraction of the run (steps or budget, "
        "whichever is further along) with the full learning rates before the decay begins")

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        for b in (*self.g_betas, *self.d_betas):
            if not 0.0 <= b < 1.0:
                raise ValueError("optim betas must be in [0, 1)")
        if self.decay_start and self.schedule != "linear":
            raise ValueError("optim.decay_start only applies to optim.schedule=linear")
        return self


class TrainConfig(_Strict):
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=2, le=65536)
    d_batch: Literal["half", "full"] = Field(
        "half", description="half: D sees batch/2 real + batch/2 fake (Keras recipe)"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    sample_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(10, ge=1, description="epochs between kept epoch checkpoints")
    checkpoint_minutes: float = Field(
        10.0, ge=0, description="also checkpoint (mid-epoch) after this many minutes; 0: off")
    minutes: float | None = Field(
        None, gt=0, description="time budget: stop with a checkpoint (and final FID) after this "
        "many minutes of training and in-run evaluation")
    tensorboard: bool = Field(False, description="also log to RUN/tensorboard (needs tensorboard)")
    on_nonfinite: Literal["stop", "rollback"] = Field(
        "stop", description="on a NaN/inf loss: stop, or reload the last checkpoint and halve "
        "both learning rates (at most 3 times)")
    keep_every: int = Field(50, ge=1, description="keep every N-th epoch checkpoint; last kept")
    log_every: int = Field(50, ge=1, description="steps between metrics.jsonl records")
    n_samples: int = Field(64, ge=1, le=1024)
    fid_every: int = Field(0, ge=0, description="0 disables FID during training")
    fid_n: int = Field(5000, ge=2)
    fid_ref: str = Field("train", min_length=1, description=(
        "train (the training images), test, a slice such as test[0:1000], or another source: "
        "a folder / zip / array of images, cifar10:test, a mu/sigma statistics .npz"))
    fid_pr: bool = Field(False, description="also precision/recall and density/coverage (k=3) "
                         "of fid_n samples against as many reference images")
    fid_mode: Literal["tf", "pytorch-fid"] = "tf"
    fid_intra: bool = Field(False, description="also intra-FID with each FID (a conditional run: "
                            "each class's FID against that class's reference images, averaged; "
                            "the reference needs labels)")
    fid_best: Literal["fid", "intra_fid"] = Field(
        "fid", description="what picks best.safetensors; intra_fid needs fid_intra")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.d_batch == "half" and self.batch_size % 2:
            raise ValueError("train.batch_size must be even with train.d_batch=half")
        if self.fid_best == "intra_fid" and not self.fid_intra:
            raise ValueError("train.fid_best=intra_fid needs train.fid_intra=true")
        return self

    @property
    def n_real(self) -> int:
        """Real images per D step (and per rank): with ``d_batch: half`` the batch is half
        real, half fake, as in the Keras reference; with ``full`` D sees a whole batch of each."""
        return self.batch_size // 2 if self.d_batch == "half" else self.batch_size


class CondConfig(_Strict):
    """Class-conditional training (Miyato & Koyama 2018; Odena et al. 2017): G gets
    conditional batch norm, D a projection head or an auxiliary classifier."""

    n_classes: int = Field(0, ge=0, le=10000, description=(
        "0: unconditional; else the number of classes of the data (10 for CIFAR-10)"))
    discriminator: Literal["projection", "ac"] = Field(
        "projection", description="projection: D's score + <embed(y), h>; ac: an auxiliary "
        "classifier head with a cross-entropy term (AC-GAN)")
    ac_weight: float = Field(1.0, ge=0, description="weight of AC-GAN's cross-entropy terms")
    fake_labels: Literal["uniform", "data"] = Field(
        "uniform", description="labels of generated images in training: uniform over the "
        "classes, or by the data's class frequencies")


class EMAConfig(_Strict):
    """An exponential moving average of G's weights (Yazici et al. 2019), used for samples,
    FID, the best checkpoint and ``generate`` when enabled."""

    enabled: bool = False
    decay: float = Field(0.999, ge=0.0, lt=1.0)
    warmup: bool = Field(True, description="decay min(decay, (1+t)/(10+t)) at step t, so the "
                         "average is not dominated by the random initial weights")


class AugmentConfig(_Strict):
    """DiffAugment (Zhao et al. 2020): differentiable augmentation of every image D sees."""

    policy: list[Literal["color", "translation", "cutout"]] = Field(default_factory=list)
    translation: float = Field(0.125, ge=0.0, le=0.5, description="max shift, fraction of size")
    cutout: float = Field(0.5, ge=0.0, le=1.0, description="cutout square side, fraction of size")


class PerfConfig(_Strict):
    """Speed settings. ``auto`` (and ``threads`` unset on the CPU) is decided by timing a few
    real steps of the run's model on its device (``gankit.training.tuner``), not by flags."""

    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = Field(
        "auto", description="auto: measured on CUDA; off on the CPU (measured slower there)")
    threads: int | None = Field(None, ge=1, description="CPU threads; unset: measured")
    sync_bn: bool | Literal["auto"] = Field(
        "auto", description="SyncBatchNorm under DDP (batch statistics over all ranks, as one "
        "process at batch W x b); auto: on for batch-norm models under CUDA DDP. PyTorch "
        "supports it on GPUs only: on CPU/gloo each rank normalises its own batch")
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="DDP process-group backend; auto: NCCL on CUDA, gloo on the CPU. "
        "gloo on CUDA lets more ranks than GPUs share them (NCCL refuses two ranks on one GPU): "
        "a functional check of the DDP path on a one-GPU machine, not a fast setting")


class Config(_Strict):
    name: str = "custom"
    data: DataConfig = Field(default_factory=DataConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cond: CondConfig = Field(default_factory=CondConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    perf: PerfConfig = Field(default_factory=PerfConfig)

    @model_validator(mode="after")
    def _check(self) -> Config:
        self._fit_resolution()
        bce = self.loss.name == "bce"
        if not custom_arch(self.discriminator.arch) and self.loss.name in BUILTIN_LOSSES and \
                bce != (self.discriminator.output == "sigmoid"):
            raise ValueError(
                "discriminator.output=sigmoid goes with loss.name=bce only "
                f"(got output={self.discriminator.output}, loss={self.loss.name})"
            )
        if self.cond.n_classes and not custom_arch(self.generator.arch) and \
                self.generator.norm != "batch":
            raise ValueError("cond.n_classes needs generator.norm=batch: the generator is "
                             "conditioned through conditional batch norm")
        if self.train.fid_intra and not self.cond.n_classes:
            raise ValueError("train.fid_intra needs a class-conditional run (cond.n_classes > 0)")
        if self.optim.g_fake == "reuse" and self.train.d_batch == "half":
            raise ValueError(
                "optim.g_fake=reuse needs train.d_batch=full: with half, D's fakes are half "
                "a batch and the G step would train on batch_size/2 images")
        return self

    def _fit_resolution(self) -> None:
        """Give 32-px networks the stages ``data.resolution`` needs, and check the result.

        Presets describe 32-px networks (G: 3 up-stages from 4x4). At 64 / 128 px a G whose
        ``widths`` list 3 stages gains one / two more at the output end with its last width,
        and D gains as many stride-2 layers at the input end with its first width (kernel 4
        where per-layer kernels are listed, as SNGAN's downsampling layers; the input layer's
        norm where per-layer norms are listed), so every layer of
        the 32-px network keeps its feature-map size and attention stays where it was. A G
        that already lists ``log2(resolution / 4)`` stages is used as written, and so is D.
        """
        r = self.data.resolution
        g, d = self.generator, self.discriminator
        g_custom, d_custom = custom_arch(g.arch), custom_arch(d.arch)
        needed = (r // 4).bit_length() - 1
        ups = g.layer_strides().count(2)
        extra = needed - ups
        if g_custom:  # a custom G answers for its own size (checked when it is built)
            extra, ups = 0, needed
        if extra > 0 and ups == (BASE_RESOLUTION // 4).bit_length() - 1:
            g = g.model_validate({**g.model_dump(), "widths": g.widths + [g.widths[-1]] * extra,
                                  "strides": None if g.strides is None else g.strides + [2] * extra})
            d = d if d_custom else d.model_validate({
                **d.model_dump(), "widths": [d.widths[0]] * extra + d.widths,
                "strides": [2] * extra + d.strides,
                "kernels": None if d.kernels is None else [4] * extra + d.kernels,
                "norms": None if d.norms is None else [d.norms[0]] * extra + d.norms})
            # Validated above; plain assignment would re-run this validator (validate_assignment).
            self.__dict__.update(generator=g, discriminator=d)
        if not g_custom:
            self._check_generator_stages(g, needed)
        if not d_custom:
            d_res = d.resolutions(r)
            if d_res[-1] < 1:
                raise ValueError("discriminator.strides downsample below 1x1")
            bad = sorted(set(d.attention) - set(d_res))
            if bad:
                raise ValueError(f"discriminator.attention {bad} not among resolutions "
                                 f"{sorted(set(d_res))}")

    def _check_generator_stages(self, g: GeneratorConfig, needed: int) -> None:
        r = self.data.resolution
        ups = g.layer_strides().count(2)
        if ups != needed:
            raise ValueError(
                f"generator.widths has {ups} upsampling stages, giving "
                f"{4 * 2 ** ups}x{4 * 2 ** ups} images; data.resolution {r} "
                f"needs {needed}" + ("" if r == BASE_RESOLUTION else
                                     " (or 3, the 32-px form, which gains stages)")
            )
        produced = set(g.resolutions())
        bad = sorted(set(g.attention) - produced)
        if bad:
            raise ValueError(f"generator.attention {bad} not among resolutions {sorted(produced)}")


def lipschitz_warnings(cfg: Config) -> list[str]:
    """Combinations that leave a Wasserstein critic without Lipschitz control: each a line
    saying what is wrong, why it matters and what to change. Warnings, not errors: the
    reference design trained some of them."""
    d, loss = cfg.discriminator, cfg.loss
    if custom_arch(d.arch):  # the fields below describe the built-in D only
        return []
    out = []
    if loss.name == "wasserstein" and not d.spectral_norm and not loss.clip and d.output != "tanh":
        out.append("loss.name=wasserstein with no spectral norm, weight clipping or penalty: the "
                   "critic is unbounded and its loss can diverge; set discriminator.spectral_norm="
                   "true, loss.clip=0.01 or loss.name=wgan-gp")
    if loss.name == "wasserstein" and d.norm == "batch" and d.output == "linear":
        out.append("a batch-norm critic with a linear output and plain Wasserstein loss: batch "
                   "norm divides by the batch std, so spectral norm no longer bounds the critic's "
                   "Lipschitz constant; set discriminator.output=tanh (as the reference design), "
                   "discriminator.norm=none, or loss.name=hinge")
    if loss.name == "wgan-gp" and d.norm == "batch":
        out.append("loss.name=wgan-gp with batch norm in D: the gradient penalty is defined per "
                   "sample and batch norm couples the samples (Gulrajani et al. 2017); set "
                   "discriminator.norm=none")
    return out


def preset_names() -> list[str]:
    files = resources.files("gankit") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid config: " + "; ".join(parts)


def validate(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise GankitError(_format_validation(err)) from None


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise GankitError(f"cannot read config {path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise GankitError(f"config {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise GankitError(f"config {path} must be a YAML mapping")
    return raw


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset by name (``dcgan``) or a YAML file path, as a raw dict."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise GankitError(f"config file not found: {path}")
        return load_yaml(path)
    if name_or_path not in preset_names():
        raise GankitError(
            f"unknown preset {name_or_path!r}; choose one of {', '.join(preset_names())} "
            "or pass a YAML file"
        )
    text = (resources.files("gankit") / "presets" / f"{name_or_path}.yaml").read_text()
    return yaml.safe_load(text)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides; values are parsed as YAML (``[1, 2]``, ``true``)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GankitError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.strip().split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise GankitError(f"--set {key}: {p} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise GankitError(f"--set {key}: cannot parse value {value!r}") from None
    return raw


def resolve(preset: str, overrides: list[str] | None = None) -> Config:
    raw = apply_overrides(load_preset(preset), overrides or [])
    raw.setdefault("name", Path(preset).stem)
    return validate(raw)
