"""Data: CIFAR-10 located, extracted, validated and held in memory as one uint8 tensor."""

from gankit.data.cifar10 import CIFAR10_MD5, load_cifar10, resolve_data_dir
from gankit.data.sampler import BatchSampler, to_float

__all__ = ["CIFAR10_MD5", "BatchSampler", "load_cifar10", "resolve_data_dir", "to_float"]
