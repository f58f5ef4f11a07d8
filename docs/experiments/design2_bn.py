"""Why reference design 2 (sndcgan / sagan) does not learn: D's batch-norm handling and the
scale of the critic's pre-activation into tanh, tried side by side (issue 21).

    GANKIT_DATA_DIR=... GANKIT_INCEPTION=... GANKIT_TEST_STATS=cifar10-test-tf.npz \
    T=2 python docs/experiments/design2_bn.py PRESET VARIANT STEPS [fp32|bf16] [--set pairs]

VARIANT words: ``mixed`` (D sees real+fake in one batch-norm batch), ``geval`` (the G step
runs D's batch norm in inference mode, as a frozen TF2-Keras D does), ``scaleK`` (the head's
pre-activation divided by K before tanh); ``base`` is gankit as it is. Prints the losses,
the mean |pre-activation| and D's outputs every 250 steps, FID-500 vs the test statistics
at the start and every 750 steps.
"""
import json
import os
import re
import sys
import time

import torch

from gankit.config import resolve
from gankit.data import load_images
from gankit.data.sampler import BatchSampler
from gankit.generate import sample_images
from gankit.metrics.fid import Stats, fid_from_stats
from gankit.metrics.inception import FeatureExtractor
from gankit.models import build_models
from gankit.training.runtime import Runtime
from gankit.training.step import GANStep

preset, variant, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
prec = sys.argv[4] if len(sys.argv) > 4 else "fp32"
extra = sys.argv[5:]
torch.set_num_threads(int(os.environ.get("T","2")))
cfg = resolve(preset, ["perf.precision=" + prec] + extra)
torch.manual_seed(0)
g, d = build_models(cfg)
rt = Runtime(torch.device("cpu"), None if prec == "fp32" else torch.bfloat16, False)
imgs = load_images("cifar10", data_dir=os.environ["GANKIT_DATA_DIR"], split="train", resolution=32)
sampler = BatchSampler(imgs.pixels, cfg.train.n_real, torch.Generator().manual_seed(1))
st = GANStep(cfg, g, d, rt, torch.Generator().manual_seed(2))
m = re.search(r"scale([0-9.]+)", variant)
if m:
    k = float(m.group(1))
    d.head.register_forward_hook(lambda mod, i, o: o / k)
if "mixed" in variant:
    st.concat_d = True
if "geval" in variant:
    orig = st.g_step
    def g_step():
        st.d_plain.eval()
        try:
            return orig()
        finally:
            st.d_plain.train()
    st.g_step = g_step
ext = FeatureExtractor(os.environ["GANKIT_INCEPTION"])
ref = Stats.load(os.environ["GANKIT_TEST_STATS"])
def fid(n=500):
    return fid_from_stats(Stats.from_features(ext(sample_images(g, n, 123))), ref, method="eigh")
pre = {}
d.head.register_forward_hook(lambda m, i, o: pre.__setitem__("x", o.detach()))
log = {"variant": variant, "preset": preset, "prec": prec, "fid0": fid()}
print(json.dumps(log), flush=True)
t0 = time.time(); s = 0
while s < steps:
    for real in sampler.epoch():
        st([real]); s += 1
        if s % 250 == 0:
            vals = (st.stats / st.count).tolist(); st.stats.zero_(); st.count = 0
            with torch.no_grad():
                d.train(); st.d(real); pr = pre["x"].abs().mean().item()
                o_r = d(real).mean().item(); o_f = d(g(torch.randn(32, cfg.generator.latent_dim))).mean().item()
            rec = {"step": s, "dr": round(vals[0], 3), "df": round(vals[1], 3), "g": round(vals[2], 3),
                   "preact_abs": round(pr, 2), "Dreal": round(o_r, 3), "Dfake": round(o_f, 3),
                   "t": round(time.time() - t0)}
            if s % 750 == 0:
                rec["fid500"] = round(fid(), 1)
            print(json.dumps(rec), flush=True)
        if s >= steps:
            break
