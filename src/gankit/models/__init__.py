"""Models: DCGAN-style and ResNet generators and discriminators, optional self-attention."""

from gankit.models.attention import SelfAttention
from gankit.models.dcgan import (
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
    build_models,
)

__all__ = ["Discriminator", "Generator", "SelfAttention", "build_discriminator",
           "build_generator", "build_models"]
