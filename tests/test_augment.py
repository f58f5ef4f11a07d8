"""DiffAugment: shapes, values, gradients through every transform, identity when off."""

import pytest
import torch

from gankit.data.augment import DiffAugment, color, cutout, translation


def _x(n=64):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_translation_shifts_whole_images_by_whole_pixels():
    torch.manual_seed(0)
    x = _x()
    y = translation(x, 0.125)
    assert y.shape == x.shape
    for i in range(len(x)):  # each output is the input shifted by some (dy, dx) in [-4, 4]
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                s = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy):32 - max(0, dy), max(0, -dx):32 - max(0, dx)]
                s[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
                found |= torch.equal(s, y[i])
        assert found, i


def test_cutout_zeroes_one_square_of_half_the_side():
    torch.manual_seed(1)
    x = _x().abs() + 0.1  # no zeros of its own
    y = cutout(x, 0.5)
    zero = (y == 0).all(dim=1)  # N x H x W
    assert torch.equal(y[~zero.unsqueeze(1).expand_as(y)], x[~zero.unsqueeze(1).expand_as(x)])
    for z in zero:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert len(rows) <= 16 and len(cols) <= 16 and z.sum() == len(rows) * len(cols)
    assert zero.flatten(1).sum(1).float().mean() > 100  # mostly inside: about 16 x 16


def test_color_stays_in_the_documented_range():
    torch.manual_seed(2)
    x = _x(256)
    y = color(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(x, y)
    # brightness +-0.5, saturation x2 and contrast x1.5 around means in [-1.5, 1.5]
    assert y.abs().max() < 1.5 + 2 * 1.5 * 3


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"],
                                    ["color", "translation", "cutout"]])
def test_gradients_flow_through(policy):
    torch.manual_seed(3)
    x = _x(8).requires_grad_(True)
    DiffAugment(policy)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_off_is_identity_and_policy_order_is_fixed():
    x = _x(4)
    aug = DiffAugment([])
    assert not aug and aug(x) is x
    assert DiffAugment(["cutout", "color"]).policy == ["color", "cutout"]

