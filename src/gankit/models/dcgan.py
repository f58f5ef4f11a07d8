"""DCGAN-style generator and discriminator, configurable enough to express every preset.

G: dense projection to ``base_channels x 4 x 4`` -> one stride-2 transposed conv per entry
of ``widths`` (a same-size odd-kernel conv where ``strides`` says 1; each followed by norm +
activation, attention after the last layer at a listed resolution) -> conv to RGB ->
tanh. D: one conv per entry of ``widths``/``strides`` (norm + activation, attention where
asked) -> flatten -> dropout -> linear to one output, times ``head_gain``, tanh where asked.
D returns the *logit* when its output is ``sigmoid``: the BCE loss applies the sigmoid
itself, which is the numerically stable form.
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.config import (
    BASE_RESOLUTION,
    Config,
    DiscriminatorConfig,
    GeneratorConfig,
    custom_arch,
)
from gankit.models import registry
from gankit.models.attention import SelfAttention
from gankit.models.layers import (
    CondSequential,
    SNImpl,
    activation,
    conditional_head,
    d_output,
    head_gain,
    init_weights,
    maybe_sn,
    norm2d,
)


def _attends(sizes: list[int], i: int, attention: list[int]) -> bool:
    """Attention follows the *last* layer at a listed resolution (once per resolution, even
    where same-size layers repeat it)."""
    return sizes[i] in attention and (i + 1 == len(sizes) or sizes[i + 1] != sizes[i])


class Generator(nn.Module):
    """``n_classes``: class-conditional with conditional batch norm in every norm layer."""

    def __init__(self, cfg: GeneratorConfig, sn_impl: SNImpl = "parametrization",
                 n_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.n_classes = cfg.latent_dim, n_classes
        sn = cfg.spectral_norm
        self.base = cfg.base_channels
        self.project = maybe_sn(nn.Linear(cfg.latent_dim, self.base * 16), sn, sn_impl)
        self.project_post = CondSequential(
            norm2d(cfg.norm, self.base, n_classes), activation(cfg.activation, cfg.leaky_slope)
        )
        layers: list[nn.Module] = []
        cin = self.base
        k = cfg.kernel_size
        pad = (k - 1) // 2
        same_k = k if k % 2 else k - 1  # a same-size layer needs an odd kernel
        res = cfg.resolutions()
        for i, (w, s) in enumerate(zip(cfg.widths, cfg.layer_strides(), strict=True)):
            conv = (nn.ConvTranspose2d(cin, w, k, 2, pad, output_padding=2 - k + 2 * pad)
                    if s == 2 else nn.Conv2d(cin, w, same_k, 1, same_k // 2))
            layers += [maybe_sn(conv, sn, sn_impl), norm2d(cfg.norm, w, n_classes),
                       activation(cfg.activation, cfg.leaky_slope)]
            if _attends(res, i, cfg.attention):
                layers.append(SelfAttention(w, sn, cfg.attention_pool, sn_impl))
            cin = w
        layers += [
            maybe_sn(nn.Conv2d(cin, 3, cfg.out_kernel, 1, cfg.out_kernel // 2), sn, sn_impl),
            nn.Tanh(),
        ]
        self.body = CondSequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], self.base, 4, 4)
        return self.body(self.project_post(x, y), y)


class Discriminator(nn.Module):
    """``n_classes`` with ``cond``: a projection head or an AC classifier (``conditional_head``)."""

    def __init__(self, cfg: DiscriminatorConfig, sn_impl: SNImpl = "parametrization",
                 resolution: int = BASE_RESOLUTION, n_classes: int = 0,
                 cond: str = "projection") -> None:
        super().__init__()
        self.n_classes = n_classes
        sn = cfg.spectral_norm
        layers: list[nn.Module] = []
        cin, res = 3, resolution
        sizes = cfg.resolutions(resolution)
        for i, (w, s, k, nm) in enumerate(zip(cfg.widths, cfg.strides, cfg.layer_kernels(),
                                              cfg.layer_norms(), strict=True)):
            res //= s
            layers += [
                # (k-1)//2 keeps the size at stride 1 (odd k) and halves it at stride 2 (k=3, 4)
                maybe_sn(nn.Conv2d(cin, w, k, s, (k - 1) // 2), sn, sn_impl),
                norm2d(nm, w, affine=cfg.norm_affine),
                activation(cfg.activation, cfg.leaky_slope),
            ]
            if _attends(sizes, i, cfg.attention):
                layers.append(SelfAttention(w, sn, cfg.attention_pool, sn_impl))
            cin = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = maybe_sn(nn.Linear(cin * res * res, 1), sn, sn_impl)
        self.cond = conditional_head(cond, n_classes, cin * res * res, sn, sn_impl)
        self.gain = head_gain(cfg.head_gain, cin * res * res)
        self.output = cfg.output
        self.has_batchnorm = "batch" in cfg.layer_norms()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.dropout(self.features(x).flatten(1))
        return d_output(self.head(h), h, y, self.cond, self.gain, self.output)


def build_generator(cfg: GeneratorConfig, sn_impl: SNImpl = "parametrization",
                    resolution: int = BASE_RESOLUTION, n_classes: int = 0) -> nn.Module:
    """G as ``cfg.arch`` says; a custom one is built from ``cfg.kwargs`` and checked against
    the model contract (:mod:`gankit.models.registry`)."""
    if custom_arch(cfg.arch):
        g = registry.build("generator", cfg.arch, cfg.kwargs)
        registry.check_generator(g, cfg.latent_dim, resolution, n_classes)
        return g
    if cfg.arch == "resnet":
        from gankit.models.resnet import ResNetGenerator

        return init_weights(ResNetGenerator(cfg, sn_impl, n_classes), cfg.init)
    return init_weights(Generator(cfg, sn_impl, n_classes), cfg.init)


def build_discriminator(cfg: DiscriminatorConfig, sn_impl: SNImpl = "parametrization",
                        resolution: int = BASE_RESOLUTION, n_classes: int = 0,
                        cond: str = "projection") -> nn.Module:
    if custom_arch(cfg.arch):
        d = registry.build("discriminator", cfg.arch, cfg.kwargs)
        registry.check_discriminator(d, resolution, n_classes)
        return d
    if cfg.arch == "resnet":
        from gankit.models.resnet import ResNetDiscriminator

        return init_weights(ResNetDiscriminator(cfg, sn_impl, resolution, n_classes, cond),
                            cfg.init)
    return init_weights(Discriminator(cfg, sn_impl, resolution, n_classes, cond), cfg.init)


def build_models(cfg: Config, sn_impl: SNImpl = "parametrization") -> tuple[nn.Module, nn.Module]:
    """G and D as the config's ``arch`` fields say (DCGAN-style or ResNet), class-conditional
    when ``cond.n_classes`` is set."""
    k = cfg.cond.n_classes
    return (build_generator(cfg.generator, sn_impl, cfg.data.resolution, k),
            build_discriminator(cfg.discriminator, sn_impl, cfg.data.resolution, k,
                                cfg.cond.discriminator))
