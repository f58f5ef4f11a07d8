import pytest
import torch

from gankit.config import resolve
from gankit.models import SelfAttention, build_models


@pytest.mark.parametrize("preset", ["dcgan", "sndcgan", "sagan", "sngan", "sngan-resnet",
                                    "sagan-resnet", "cpu"])
def test_shapes_and_ranges(preset):
    cfg = resolve(preset)
    g, d = build_models(cfg)
    x = g(torch.randn(5, cfg.generator.latent_dim))
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert d(x).shape == (5,)


def test_keras_dcgan_layers():
    g, d = build_models(resolve("dcgan"))
    assert g.project.out_features == 256 * 16
    convt = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convt] == [(128, (4, 4), (2, 2))] * 3
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.stride[0]) for m in convs] == [(64, 1), (128, 2), (128, 2), (256, 2)]
    assert d.dropout.p == 0.4


def test_configurable_stages_kernels_and_norm():
    cfg = resolve("sndcgan", ["generator.kernel_size=3", "discriminator.widths=[32, 64]",
                              "discriminator.strides=[2, 2]", "generator.activation=none",
                              "generator.norm=none"])
    g, d = build_models(cfg)
    assert g(torch.randn(2, 32)).shape == (2, 3, 32, 32)
    assert d.head.in_features == 64 * 8 * 8
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())


@pytest.mark.parametrize("impl", ["parametrization", "legacy"])
def test_spectral_norm_top_singular_value_is_one(impl):
    cfg = resolve("sndcgan")
    g, d = build_models(cfg, sn_impl=impl)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(g(torch.randn(4, 32)))
    layers = [m for m in list(g.modules()) + list(d.modules())
              if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    assert len(layers) >= 9
    for m in layers:
        w = m.weight.detach()
        w = w.transpose(0, 1) if isinstance(m, torch.nn.ConvTranspose2d) else w
        sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05), m


@pytest.mark.parametrize("pool", [False, True])
def test_attention_with_zero_gamma_is_identity(pool):
    att = SelfAttention(64, sn=True, pool=pool)
    x = torch.randn(2, 64, 16, 16)
    assert att.gamma.item() == 0
    assert torch.equal(att(x), x)
    att.gamma.data.fill_(1.0)
    y = att(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert att.query.weight.shape[0] == 8 and att.key.weight.shape[0] == 8


def test_attention_matches_explicit_softmax():
    att = SelfAttention(16)
    att.gamma.data.fill_(0.7)
    x = torch.randn(2, 16, 4, 4)
    q = att.query(x).flatten(2)  # B x C/8 x N
    k = att.key(x).flatten(2)
    v = att.value(x).flatten(2)
    beta = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # B x N x N, rows sum to 1
    o = (v @ beta.transpose(1, 2)).view(2, -1, 4, 4)
    torch.testing.assert_close(att(x), x + 0.7 * att.out(o), atol=1e-5, rtol=1e-5)


def test_sagan_places_attention_at_32x32():
    g, d = build_models(resolve("sagan"))
    seen = []
    for m in (g, d):
        for mod in m.modules():
            if isinstance(mod, SelfAttention):
                mod.register_forward_hook(lambda _m, i, _o: seen.append(i[0].shape[-1]))
    d(g(torch.randn(2, 32)))
    assert seen == [32, 32]


def _sn_wrapped(m: torch.nn.Module) -> bool:
    return torch.nn.utils.parametrize.is_parametrized(m, "weight")


@pytest.mark.parametrize("preset", ["sngan-resnet", "sagan-resnet"])
def test_resnet_layout_and_spectral_norm_on_every_d_layer(preset):
    from gankit.models.resnet import DownBlock, ResNetDiscriminator, ResNetGenerator, UpBlock

    cfg = resolve(preset)
    g, d = build_models(cfg)
    assert isinstance(g, ResNetGenerator) and isinstance(d, ResNetDiscriminator)
    ups = [m for m in g.modules() if isinstance(m, UpBlock)]
    downs = [m for m in d.modules() if isinstance(m, DownBlock)]
    assert len(ups) == 3 and [b.down for b in downs] == [True, True, False, False]
    assert downs[0].first and not any(b.first for b in downs[1:])
    # shapes through D: 32 -> 16 -> 8 -> 8 -> 8, 128 channels, global sum pooling to the head
    x = torch.randn(2, 3, 32, 32)
    for b in downs:
        x = b(x)
    assert x.shape == (2, 128, 8, 8) and d.head.in_features == 128
    weighted = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert weighted and all(_sn_wrapped(m) for m in weighted)
    g_weighted = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert all(_sn_wrapped(m) for m in g_weighted) == (preset == "sagan-resnet")
    attn = [m for m in [*g.modules(), *d.modules()] if isinstance(m, SelfAttention)]
    assert len(attn) == (2 if preset == "sagan-resnet" else 0)


def test_resnet_blocks_are_residual():
    """With the residual branch's last conv zeroed, an up-block is its shortcut alone."""
    from gankit.models.resnet import UpBlock

    cfg = resolve("sngan-resnet")
    blk = UpBlock(8, 4, cfg.generator, "parametrization").eval()
    torch.nn.init.zeros_(blk.conv2.weight)
    torch.nn.init.zeros_(blk.conv2.bias)
    x = torch.randn(2, 8, 4, 4)
    expect = blk.shortcut(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(blk(x), expect)


def test_sngan_standard_cnn_discriminator():
    cfg = resolve("sngan")
    _, d = build_models(cfg)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in convs] == [
        (64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2), (512, 3, 1)]
    assert d.head.in_features == 512 * 4 * 4 and all(_sn_wrapped(m) for m in convs)


def test_weight_init_schemes():
    """dcgan: N(0, 0.02) weights, BN scale N(1, 0.02), zero biases; a spectrally normalised
    layer is re-wrapped so its top singular value is 1 for the *new* weight."""
    torch.manual_seed(0)
    g, d = build_models(resolve("sagan", ["generator.init=dcgan", "discriminator.init=dcgan"]))
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([m.parametrizations.weight.original.flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(float(bn.mean()) - 1.0) < 0.01 and 0.01 < float(bn.std()) < 0.03
    assert all(float(m.bias.abs().max()) == 0 for m in convs)
    for m in [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]:
        sigma = torch.linalg.matrix_norm(m.weight.reshape(m.weight.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05
    torch.manual_seed(0)
    g0, _ = build_models(resolve("sagan"))
    torch.manual_seed(0)
    g1, _ = build_models(resolve("sagan", ["generator.init=default"]))
    assert all(torch.equal(a, b) for a, b in zip(g0.state_dict().values(),
                                                  g1.state_dict().values(), strict=True))


def test_attention_pools_keys_and_values_after_their_convs():
    """SAGAN / BigGAN: phi = maxpool(W_phi x), g = maxpool(W_g x), not W_phi maxpool(x)
    (different with a 1x1 conv: max does not commute with a linear map)."""
    import torch.nn.functional as F

    from gankit.models.attention import SelfAttention

    torch.manual_seed(0)
    att = SelfAttention(16, pool=True)
    with torch.no_grad():
        att.gamma.fill_(0.7)
    x = torch.randn(2, 16, 8, 8)

    def conv(m, t):
        return torch.einsum("oc,bchw->bohw", m.weight[:, :, 0, 0], t)

    q = conv(att.query, x).flatten(2).transpose(1, 2)
    k = F.max_pool2d(conv(att.key, x), 2).flatten(2)
    v = F.max_pool2d(conv(att.value, x), 2).flatten(2).transpose(1, 2)
    o = (torch.softmax(q @ k, -1) @ v).transpose(1, 2).reshape(2, 8, 8, 8)
    expected = x + 0.7 * conv(att.out, o)
    torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-5)


def test_head_gain_divides_the_pre_activation_by_sqrt_fan_in():
    """tanh(w.h / 64) for sndcgan's 256 x 4 x 4 = 4,096 features, computed by hand from the
    head's (spectrally normalised) weight."""
    torch.manual_seed(0)
    _, d = build_models(resolve("sndcgan"))
    d.eval()
    x = torch.randn(3, 3, 32, 32)
    h = d.features(x).flatten(1)
    w, b = d.head.weight, d.head.bias
    assert h.shape[1] == 4096
    expected = torch.tanh((h @ w.t()).squeeze(1) / 64 + b / 64)
    torch.testing.assert_close(d(x), expected, rtol=1e-5, atol=1e-6)
    _, d1 = build_models(resolve("sndcgan", ["discriminator.head_gain=1.0"]))
    assert d1.gain == 1.0 and d.gain == pytest.approx(1 / 64)


def _max_rms_pre_activation(preset: str, sets: list[str], steps: int = 40) -> float:
    """Gradient *ascent* on every D weight to push its pre-tanh output away from 0 on one
    batch, as a critic that separates real from fake does; the largest RMS reached."""
    torch.manual_seed(0)
    _, d = build_models(resolve(preset, sets))
    d.output = "linear"  # the scaled pre-activation that tanh would see
    x = torch.randn(16, 3, 32, 32)
    sign = torch.ones(16)
    sign[8:] = -1  # half "real", half "fake"
    opt = torch.optim.Adam(d.parameters(), lr=0.05)
    worst = 0.0
    for _ in range(steps):
        out = d(x)
        worst = max(worst, (out - d.head.bias * d.gain).pow(2).mean().sqrt().item())
        opt.zero_grad()
        (-(out * sign).mean()).backward()
        opt.step()
    return worst


@pytest.mark.parametrize("preset", ["sndcgan", "sagan"])
def test_design2_critic_cannot_saturate(preset):
    """Closed form: without batch norm's affine, the last layer's features are unit-variance
    per channel over the batch, so sum_i ||h_i||^2 <= N x 4,096 (LeakyReLU only shrinks);
    with ||w|| <= 1 (spectral norm) and gain 1/64 the batch RMS of w.h x gain is <= 1,
    whatever the weights: tanh stays below tanh(1) on average and D keeps a gradient.
    The presets keep the affine (the reference's batch norm), which escapes the bound: its
    scale grew to 5x in a 30-minute run (docs/design2.md)."""
    assert _max_rms_pre_activation(preset, ["discriminator.norm_affine=false"]) <= 1.0 + 1e-3
    assert _max_rms_pre_activation(preset, []) > 1.5


def test_per_layer_norms():
    _, d = build_models(resolve("cpu", ["discriminator.norms=[none, batch, batch]"]))
    mods = list(d.features)
    assert isinstance(mods[1], torch.nn.Identity)
    assert [isinstance(m, torch.nn.BatchNorm2d) for m in mods].count(True) == 2
    assert d.has_batchnorm


def test_sngan_xavier_gains():
    """SNGAN / Mimicry: xavier-uniform with gain sqrt(2) in residual 3x3 convs, 1 in shortcuts
    and linears. U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)): max |w| just under a."""
    import math

    torch.manual_seed(0)
    g, d = build_models(resolve("sngan-resnet", ["generator.init=xavier",
                                                 "discriminator.init=xavier"]))

    def bound(w, gain):
        rf = w[0, 0].numel()
        return gain * math.sqrt(6 / (w.shape[0] * rf + w.shape[1] * rf))

    def weight(m):
        p = getattr(m, "parametrizations", None)
        return (p.weight.original if p is not None else m.weight).detach()

    blocks = [b for b in list(g.blocks) + list(d.blocks) if hasattr(b, "conv1")]
    assert len(blocks) == 7
    for b in blocks:
        for conv, gain in ((b.conv1, math.sqrt(2)), (b.conv2, math.sqrt(2)),
                           (b.shortcut, 1.0)):
            if conv is None:
                continue
            w, a = weight(conv), bound(weight(conv), gain)
            assert 0.97 * a < float(w.abs().max()) <= a
            assert float(w.std()) == pytest.approx(a / math.sqrt(3), rel=0.05)
    for lin in (g.project, d.head):
        w = weight(lin)
        assert float(w.abs().max()) <= bound(w[:, :, None, None], 1.0)
