"""gankit: train, evaluate and report DCGAN / SAGAN on CIFAR-10 with standard FID."""

__version__ = "0.1.0"
