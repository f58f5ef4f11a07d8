import pytest

from gankit.config import apply_overrides, preset_names, resolve, validate
from gankit.errors import GankitError


def test_presets_resolve_to_reference_recipes():
    assert {"dcgan", "sndcgan", "sagan"} <= set(preset_names())
    d = resolve("dcgan")
    assert (d.generator.latent_dim, d.train.batch_size, d.train.d_batch) == (100, 128, "half")
    assert (d.loss.name, d.discriminator.output, d.discriminator.dropout) == ("bce", "sigmoid", 0.4)
    s = resolve("sndcgan")
    assert s.generator.spectral_norm and s.discriminator.spectral_norm
    assert s.optim.d_lr == pytest.approx(5 * s.optim.g_lr)
    assert (s.generator.latent_dim, s.train.batch_size, s.loss.name) == (32, 32, "wasserstein")
    a = resolve("sagan")
    assert a.generator.attention == [32] and a.discriminator.attention == [32]


def test_overrides_parse_yaml_values():
    cfg = resolve("sagan", ["generator.latent_dim=64", "discriminator.output=tanh",
                            "generator.attention=[16, 32]"])
    assert cfg.generator.latent_dim == 64 and cfg.generator.attention == [16, 32]
    assert cfg.discriminator.output == "tanh"


@pytest.mark.parametrize("override, match", [
    ("generator.nope=1", "generator.nope: unknown key"),
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("generator.widths=[8, 8]", "data.resolution 32 needs 3"),
    ("generator.attention=[7]", "generator.attention"),
    ("loss.name=hinge", "sigmoid goes with loss.name=bce"),
    ("train.batch_size=7", "must be even"),
    ("optim.g_fake=reuse", "g_fake=reuse needs train.d_batch=full"),  # dcgan: d_batch half
    ("optim.g_fake=again", "optim.g_fake"),
    ("optim.decay_start=0.5", "decay_start only applies to optim.schedule=linear"),
    ("optim.decay_start=1.0", "optim.decay_start"),
])
def test_bad_values_give_one_clear_error(override, match):
    with pytest.raises(GankitError, match=match):
        resolve("dcgan", [override])


def test_unknown_preset_and_malformed_set():
    with pytest.raises(GankitError, match="unknown preset 'nope'"):
        resolve("nope")
    with pytest.raises(GankitError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_preset_file_can_be_copied_and_edited(tmp_path):
    import yaml

    raw = yaml.safe_load((__import__("gankit").config.resources.files("gankit") /
                          "presets" / "sagan.yaml").read_text())
    raw["generator"]["latent_dim"] = 48
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert resolve(str(p)).generator.latent_dim == 48


def test_reference_presets_use_the_bounded_tanh_critic():
    for name in ("sndcgan", "sagan"):
        c = resolve(name)
        assert (c.discriminator.output, c.discriminator.norm, c.loss.name) == \
            ("tanh", "batch", "wasserstein")


def test_literature_presets():
    s = resolve("sngan")
    assert (s.loss.name, s.optim.g_betas, s.optim.n_dis, s.optim.schedule) == \
        ("hinge", (0.0, 0.9), 5, "linear")
    assert s.discriminator.spectral_norm and s.ema.enabled
    for name in ("sngan-resnet", "sagan-resnet"):
        r = resolve(name)
        assert (r.generator.arch, r.discriminator.arch, r.loss.name, r.optim.n_dis) == \
            ("resnet", "resnet", "hinge", 5)
        assert (r.optim.g_lr, r.optim.d_lr, r.optim.schedule) == (2e-4, 2e-4, "linear")
    assert resolve("sagan-resnet").generator.attention == [16]


def test_lipschitz_warnings():
    from gankit.config import lipschitz_warnings

    for name in preset_names():
        assert lipschitz_warnings(resolve(name)) == [], name
    w = lipschitz_warnings(resolve("dcgan", ["loss.name=wasserstein",
                                             "discriminator.output=linear"]))
    assert len(w) == 1 and "no spectral norm, weight clipping or penalty" in w[0]
    assert "loss.name=wgan-gp" in w[0]  # says how to fix it
    assert lipschitz_warnings(resolve("dcgan", ["loss.name=wasserstein", "loss.clip=0.01",
                                                "discriminator.output=linear"])) == []
    w = lipschitz_warnings(resolve("sndcgan", ["discriminator.output=linear"]))
    assert len(w) == 1 and "batch norm" in w[0] and "discriminator.output=tanh" in w[0]
    w = lipschitz_warnings(resolve("sndcgan", ["loss.name=wgan-gp",
                                               "discriminator.output=linear"]))
    assert len(w) == 1 and "wgan-gp with batch norm" in w[0]


@pytest.mark.parametrize("override, match", [
    ("discriminator.kernels=[3, 4]", "one entry per entry of widths"),
    ("discriminator.kernels=[4, 3, 3, 3]", "must be odd at stride 1"),
    ("discriminator.kernel_size=4", "must be odd at stride 1"),
])
def test_kernel_checks(override, match):
    with pytest.raises(GankitError, match=match):
        resolve("dcgan", [override])


@pytest.mark.parametrize("preset", ["dcgan", "sngan", "sagan", "sngan-resnet", "cpu"])
def test_resolution_adds_stages_and_keeps_the_32px_network(preset):
    """At 64 / 128 px G gains up-stages at its output end and D stride-2 layers at its input
    end; the 32-px layers keep their widths, strides and feature-map sizes."""
    base = resolve(preset)
    for r, extra in ((64, 1), (128, 2)):
        cfg = resolve(preset, [f"data.resolution={r}"])
        g, d, g0, d0 = cfg.generator, cfg.discriminator, base.generator, base.discriminator
        assert g.widths == g0.widths + [g0.widths[-1]] * extra
        assert d.widths == [d0.widths[0]] * extra + d0.widths
        assert d.strides == [2] * extra + d0.strides
        assert d.resolutions(r)[extra:] == d0.resolutions(32)
        assert g.attention == g0.attention and d.attention == d0.attention
        assert validate(cfg.model_dump()) == cfg  # the expanded form is used as written


def test_full_length_widths_are_used_as_written():
    cfg = resolve("dcgan", ["data.resolution=64", "generator.widths=[256, 128, 64, 32]"])
    assert cfg.generator.widths == [256, 128, 64, 32]
    assert cfg.discriminator.strides == [1, 2, 2, 2]  # D as written too
    with pytest.raises(GankitError, match="data.resolution 64 needs 4"):
        resolve("dcgan", ["data.resolution=64", "generator.widths=[8, 8]"])
    with pytest.raises(GankitError, match="data.resolution"):
        resolve("dcgan", ["data.resolution=48"])


@pytest.mark.parametrize("preset, override, match", [
    ("sngan-resnet", "discriminator.kernel_size=4", "apply to arch=dcgan only"),
    ("sngan-resnet", "discriminator.kernels=[3, 3, 3, 3]", "apply to arch=dcgan only"),
    ("sngan-resnet", "discriminator.norms=[none, none, none, none]", "apply to arch=dcgan"),
    ("cpu", "discriminator.norms=[none, batch]", "one entry per entry of widths"),
    ("sndcgan", "discriminator.head_gain=0", "head_gain must be positive"),
    ("sndcgan", "discriminator.head_gain=sqrt", "discriminator.head_gain"),
])
def test_fields_a_builder_would_ignore_are_errors(preset, override, match):
    with pytest.raises(GankitError, match=match):
        resolve(preset, [override])


def test_hand_written_discriminator_has_no_dropout():
    """Only the Keras reference preset uses dropout; a YAML that omits it gets none."""
    from gankit.config import DiscriminatorConfig

    assert DiscriminatorConfig().dropout == 0.0
    assert resolve("dcgan").discriminator.dropout == 0.4


def test_per_layer_norms_gain_the_input_layers_norm_at_64px():
    cfg = resolve("cpu", ["discriminator.norms=[none, batch, batch]", "data.resolution=64"])
    assert cfg.discriminator.norms == ["none", "none", "batch", "batch"]
