"""Models: configurable DCGAN-style generator and discriminator with optional self-attention."""

from gankit.models.attention import SelfAttention
from gankit.models.dcgan import Discriminator, Generator, build_models

__all__ = ["Discriminator", "Generator", "SelfAttention", "build_models"]
