"""Data: CIFAR-10/100, image folders, zips and arrays, decoded once and held in memory as one
uint8 tensor."""

from gankit.data.cifar import CIFAR10_MD5, load_cifar, load_cifar10, resolve_data_dir
from gankit.data.sampler import BatchSampler, to_float
from gankit.data.sources import Images, load_images

__all__ = ["CIFAR10_MD5", "BatchSampler", "Images", "load_cifar", "load_cifar10", "load_images",
           "resolve_data_dir", "to_float"]
