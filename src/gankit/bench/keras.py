"""Reference design 1's own Keras loop, timed on the same machine: the anchor users compare
gankit with. Optional: needs TensorFlow (``pip install "gankit[keras]"``), never imported by
gankit itself outside this module, and run in a child process so its thread pools do not
share the process with torch's.

The loop is the published Keras DCGAN for CIFAR-10: G = Dense(256*4*4) + LeakyReLU(0.2) ->
3x Conv2DTranspose(128, 4, stride 2) + LeakyReLU -> Conv2D(3, 3) tanh; D = Conv2D 64/128/128/256
(3x3, strides 1/2/2/2) + LeakyReLU(0.2) -> Flatten -> Dropout(0.4) -> Dense(1, sigmoid); Adam(2e-4,
0.5), binary cross-entropy; per iteration ``d.train_on_batch`` on 64 real then 64 generated
images and ``gan.train_on_batch`` on 128 latents. An iteration consumes 64 training images.

Keras 3 reads ``trainable`` at every step, so the tutorial's one-time ``d.trainable = False``
(written for Keras 2, where it took effect only in the combined model's compile) would freeze
D in its own updates too and time a loop that never trains D. D is therefore made trainable
for its own two updates and frozen for the combined model's (checked: D's weights change in
its step and not in G's).
"""

from __future__ import annotations

import importlib.util
import time

REAL_PER_ITERATION = 64


def available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def build(latent: int = 100, seed: int = 0):
    """``(d, g, gan)``: the reference design's compiled Keras models."""
    from tensorflow import keras
    from tensorflow.keras import layers

    keras.utils.set_random_seed(seed)
    d = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(64, 3, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(256, 3, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Flatten(), layers.Dropout(0.4), layers.Dense(1, activation="sigmoid"),
    ])
    d.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    g = keras.Sequential([
        keras.Input((latent,)),
        layers.Dense(256 * 4 * 4), layers.LeakyReLU(0.2), layers.Reshape((4, 4, 256)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(3, 3, activation="tanh", padding="same"),
    ])
    d.trainable = False
    gan = keras.Sequential([g, d])
    gan.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    return d, g, gan


def iteration(d, g, gan, real, rng, latent: int = 100) -> None:
    """One training iteration of the reference loop on 64 real images."""
    import numpy as np

    d.trainable = True
    d.train_on_batch(real, np.ones((len(real), 1), "float32"))
    fake = g.predict(rng.normal(size=(len(real), latent)).astype("float32"), verbose=0)
    d.train_on_batch(fake, np.zeros((len(real), 1), "float32"))
    d.trainable = False
    gan.train_on_batch(rng.normal(size=(2 * len(real), latent)).astype("float32"),
                       np.ones((2 * len(real), 1), "float32"))


def seconds_per_iteration(steps: int, warmup: int, threads: int, seed: int = 0) -> dict:
    """Median seconds per iteration of the Keras loop (runs in the calling process)."""
    import os
    import statistics

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    d, g, gan = build(seed=seed)
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (REAL_PER_ITERATION, 32, 32, 3)).astype("float32")
    for _ in range(warmup):
        iteration(d, g, gan, real, rng)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        iteration(d, g, gan, real, rng)
        times.append(time.perf_counter() - t)
    return {"seconds": statistics.median(times), "tensorflow": tf.__version__}
