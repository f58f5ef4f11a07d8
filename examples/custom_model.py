"""Your own G and D, trained by gankit's loop; then sampled, scored and reported by the CLI.

    python examples/custom_model.py --out runs/custom         # a CIFAR-10 slice, a few minutes
    gankit train --resume runs/custom --set train.epochs=20   # (not needed) resume works too
    gankit generate runs/custom --n 64 --out custom.png
    gankit fid runs/custom cifar10:test --n 1000
    gankit report runs/custom

The run records ``generator.arch: /abs/path/examples/custom_model.py:SmallGenerator``, so the
CLI rebuilds these classes from this file (without running ``main``) whenever it reloads the run.
"""

import argparse

from torch import nn

import gankit

sn = nn.utils.parametrizations.spectral_norm


class SmallGenerator(nn.Module):
    """z -> 4x4 -> 8 -> 16 -> 32 px with transposed convs, batch norm and ReLU (the contract:
    a ``latent_dim`` attribute, images in [-1, 1])."""

    def __init__(self, latent_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        w = [width * 4, width * 2, width]
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w[0], 4, 1, 0), nn.BatchNorm2d(w[0]), nn.ReLU(),
            nn.ConvTranspose2d(w[0], w[1], 4, 2, 1), nn.BatchNorm2d(w[1]), nn.ReLU(),
            nn.ConvTranspose2d(w[1], w[2], 4, 2, 1), nn.BatchNorm2d(w[2]), nn.ReLU(),
            nn.ConvTranspose2d(w[2], 3, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.net(z[:, :, None, None])


class SmallDiscriminator(nn.Module):
    """32 -> 16 -> 8 -> 4 px, spectral norm everywhere, one raw score per image."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = [width, width * 2, width * 4]
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, w[0], 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(w[0], w[1], 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(w[1], w[2], 4, 2, 1)), nn.LeakyReLU(0.1),
            nn.Flatten(), sn(nn.Linear(w[2] * 16, 1)))

    def forward(self, x):
        return self.net(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/custom-model")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--limit", type=int, default=5000, help="CIFAR-10 training images used")
    ap.add_argument("--data-dir", default=None, help="default: $GANKIT_DATA_DIR")
    args = ap.parse_args()
    cfg = gankit.presets.load("cpu", [
        f"data.limit={args.limit}", f"train.epochs={args.epochs}", "train.sample_every=5",
        "loss.name=hinge", "discriminator.output=linear", "optim.g_betas=[0.0, 0.9]",
        "optim.d_betas=[0.0, 0.9]", "optim.g_lr=2e-4", "optim.d_lr=4e-4"])
    trainer = gankit.Trainer(cfg, generator=SmallGenerator(), discriminator=SmallDiscriminator())
    state = trainer.fit(args.out, data_dir=args.data_dir)
    print(f"trained {args.out}: {state.global_step} steps; now try: gankit generate {args.out} "
          f"--n 64 --out samples.png")


if __name__ == "__main__":
    main()
