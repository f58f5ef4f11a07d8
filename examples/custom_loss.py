"""Your own loss through gankit's registry: least squares GAN (Mao et al. 2017) and a penalty.

    python examples/custom_loss.py --out runs/lsgan
    gankit train --preset cpu --set loss.name=examples/custom_loss.py:LeastSquares \\
        --set discriminator.output=linear --minutes 5     # the same loss from the CLI

A :class:`gankit.Loss` is a D-loss / G-loss pair on D's raw outputs, both minimised; its
``penalties`` are added to the D loss (here a small drift term on real scores, as
ProGAN's epsilon-drift). The run records the import path, so ``--resume`` rebuilds it.
"""

import argparse

import torch

import gankit


class Drift(gankit.Penalty):
    """eps * E[D(x)^2] on real images (Karras et al. 2018): keeps D's scores near 0."""

    name = "drift"

    def __call__(self, x):
        return x.out_real.pow(2).mean()


class LeastSquares(gankit.Loss):
    """D: (D(x) - 1)^2 / 2 + D(G(z))^2 / 2; G: (D(G(z)) - 1)^2 / 2."""

    def __init__(self, cfg=None, drift: float = 1e-3) -> None:
        super().__init__(cfg)
        if drift:
            self.penalties.append(Drift(drift))

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor):
        return 0.5 * (real - 1).pow(2).mean(), 0.5 * fake.pow(2).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake - 1).pow(2).mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lsgan")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--limit", type=int, default=5000, help="CIFAR-10 training images used")
    ap.add_argument("--data-dir", default=None, help="default: $GANKIT_DATA_DIR")
    args = ap.parse_args()
    cfg = gankit.presets.load("cpu", [
        f"data.limit={args.limit}", f"train.epochs={args.epochs}", "train.sample_every=5",
        f"loss.name={__file__}:LeastSquares", "loss.kwargs={drift: 0.001}",
        "discriminator.output=linear"])
    state = gankit.Trainer(cfg).fit(args.out, data_dir=args.data_dir)
    print(f"trained {args.out} with {cfg.loss.name}: {state.global_step} steps")


if __name__ == "__main__":
    main()
