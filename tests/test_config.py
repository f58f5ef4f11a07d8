import pytest

from gankit.config import apply_overrides, preset_names, resolve
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
    ("generator.widths=[8, 8]", "CIFAR-10 needs 32x32"),
    ("generator.attention=[7]", "generator.attention"),
    ("loss.name=hinge", "sigmoid goes with loss.name=bce"),
    ("train.batch_size=7", "must be even"),
    ("train.fid_ref=valid", "train.fid_ref"),
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
