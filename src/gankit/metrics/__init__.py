"""Metrics: FID and KID with the standard TensorFlow Inception network."""
