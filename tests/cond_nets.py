"""A class-conditional generator without batch norm (label embedding times z, transposed
convs): under DDP on the CPU, where batch norm is per rank, only a BN-free model can train
exactly like one process at the full batch, so the DDP-with-labels test uses this one."""

from torch import nn


class LabelG(nn.Module):
    def __init__(self, latent_dim: int = 100, n_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.embed = nn.Embedding(n_classes, latent_dim)
        nn.init.ones_(self.embed.weight)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh())

    def forward(self, z, y):
        return self.net((z * self.embed(y))[:, :, None, None])
