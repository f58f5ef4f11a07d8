"""Training: runtime setup, the GAN step, the epoch loop, checkpoints and run records."""
