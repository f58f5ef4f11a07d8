"""A cheap stand-in for Inception, shared by the tests and the torchrun worker scripts
(which import it as ``stubs``: a script's folder is on its path)."""

import torch

from gankit.metrics.inception import as_nchw_uint8


class StubExtractor:
    """4x4 average-pooled pixels as features (48), counting the images it embeds (``count``)
    so a test can tell which process or phase did the work."""

    mode, precision, sha256 = "tf", "fp32", "stub"

    def __init__(self) -> None:
        self.count = 0

    def describe(self):
        return {"mode": self.mode, "precision": self.precision, "inception_sha256": self.sha256}

    def __call__(self, images, progress=False):
        x = as_nchw_uint8(images).float()
        self.count += len(x)
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1).double().numpy()
