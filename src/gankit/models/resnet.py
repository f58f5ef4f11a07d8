"""ResNet G and D for 32x32 images, as in SNGAN (Miyato et al. 2018) and BigGAN-CIFAR.

G: z -> linear to ``base_channels x 4 x 4`` -> one up-block per entry of ``widths``
(norm, activation, 2x nearest upsampling, 3x3 conv, norm, activation, 3x3 conv; a 1x1 conv on
the upsampled input as shortcut) -> norm, activation, 3x3 conv to RGB, tanh.
D: an "optimized" first block (conv, activation, conv, 2x2 average pool; shortcut: pool then
1x1 conv, so the raw image is never passed through an activation), then one block per further
entry of ``widths`` (activation, conv, activation, conv, pool when its stride is 2; a 1x1 conv
shortcut where the shape changes), activation, global *sum* pooling, linear to one output.
Self-attention (SAGAN) follows the block that produces a listed resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import BASE_RESOLUTION, DiscriminatorConfig, GeneratorConfig
from gankit.models.attention import SelfAttention
from gankit.models.layers import (
    Conditional,
    CondSequential,
    SNImpl,
    activation,
    apply,
    conditional_head,
    d_output,
    head_gain,
    maybe_sn,
    norm2d,
)

# SNGAN's xavier scheme (Miyato et al.'s chainer code, Mimicry): gain sqrt(2) on the two 3x3
# convs of each residual branch (they feed a ReLU), 1 on shortcuts, the dense layer, the RGB
# conv and the head. ``init_weights`` reads the tag; other schemes ignore it.
RESIDUAL_GAIN = 2.0 ** 0.5


def _conv(cin: int, cout: int, k: int, sn: bool, impl: SNImpl, gain: float = 1.0) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, 1, k // 2)
    conv.init_gain = gain
    return maybe_sn(conv, sn, impl)


def _residual_convs(cin: int, cout: int, sn: bool, impl: SNImpl) -> tuple[nn.Module, nn.Module]:
    return (_conv(cin, cout, 3, sn, impl, RESIDUAL_GAIN),
            _conv(cout, cout, 3, sn, impl, RESIDUAL_GAIN))


class UpBlock(Conditional):
    def __init__(self, cin: int, cout: int, cfg: GeneratorConfig, impl: SNImpl,
                 n_classes: int = 0) -> None:
        super().__init__()
        sn = cfg.spectral_norm
        self.norm1, self.norm2 = norm2d(cfg.norm, cin, n_classes), norm2d(cfg.norm, cout, n_classes)
        self.act = activation(cfg.activation, cfg.leaky_slope)
        self.conv1, self.conv2 = _residual_convs(cin, cout, sn, impl)
        self.shortcut = _conv(cin, cout, 1, sn, impl)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(self.act(apply(self.norm1, x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(self.act(apply(self.norm2, self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, sn_impl: SNImpl = "parametrization",
                 n_classes: int = 0) -> None:
        super().__init__()
        sn = cfg.spectral_norm
        self.latent_dim, self.base, self.n_classes = cfg.latent_dim, cfg.base_channels, n_classes
        self.project = maybe_sn(nn.Linear(cfg.latent_dim, self.base * 16), sn, sn_impl)
        blocks: list[nn.Module] = []
        cin, res = self.base, 4
        for w in cfg.widths:
            res *= 2
            blocks.append(UpBlock(cin, w, cfg, sn_impl, n_classes))
            if res in cfg.attention:
                blocks.append(SelfAttention(w, sn, cfg.attention_pool, sn_impl))
            cin = w
        self.blocks = CondSequential(*blocks)
        self.out = CondSequential(
            norm2d(cfg.norm, cin, n_classes), activation(cfg.activation, cfg.leaky_slope),
            _conv(cin, 3, cfg.out_kernel, sn, sn_impl), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], self.base, 4, 4)
        return self.out(self.blocks(x, y), y)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool, first: bool, cfg: DiscriminatorConfig,
                 impl: SNImpl) -> None:
        super().__init__()
        sn = cfg.spectral_norm
        self.down, self.first = down, first
        self.act = activation(cfg.activation, cfg.leaky_slope)
        self.norm1 = norm2d(cfg.norm, cin, affine=cfg.norm_affine)
        self.norm2 = norm2d(cfg.norm, cout, affine=cfg.norm_affine)
        self.conv1, self.conv2 = _residual_convs(cin, cout, sn, impl)
        self.shortcut = _conv(cin, cout, 1, sn, impl) if (first or down or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else self.act(self.norm1(x))
        h = self.conv2(self.act(self.norm2(self.conv1(h))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.first:  # pool first: the 1x1 conv then runs on 4x fewer pixels, same result
            return h + self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ResNetDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, sn_impl: SNImpl = "parametrization",
                 resolution: int = BASE_RESOLUTION, n_classes: int = 0,
                 cond: str = "projection") -> None:
        super().__init__()
        self.n_classes = n_classes
        blocks: list[nn.Module] = []
        cin, res = 3, resolution
        for i, (w, s) in enumerate(zip(cfg.widths, cfg.strides, strict=True)):
            res //= s
            blocks.append(DownBlock(cin, w, s == 2, i == 0, cfg, sn_impl))
            if res in cfg.attention:
                blocks.append(SelfAttention(w, cfg.spectral_norm, cfg.attention_pool, sn_impl))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.act = activation(cfg.activation, cfg.leaky_slope)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = maybe_sn(nn.Linear(cin, 1), cfg.spectral_norm, sn_impl)
        self.cond = conditional_head(cond, n_classes, cin, cfg.spectral_norm, sn_impl)
        self.gain = head_gain(cfg.head_gain, cin)
        self.output = cfg.output
        self.has_batchnorm = cfg.norm == "batch"

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.dropout(self.act(self.blocks(x)).sum(dim=(2, 3)))
        return d_output(self.head(h), h, y, self.cond, self.gain, self.output)
