"""Experiment wrapper (not part of gankit): run `gankit train ...` unchanged, but also keep
EMAs of G with other decays on the same trajectory; at the end write, for each, a copy of
the final checkpoint whose G_ema is that EMA (so `gankit generate` evaluates it the same way).
Usage: python docs/experiments/multi_ema.py DECAY[,DECAY...] TRAIN-ARGS... (TRAIN-ARGS as for
`gankit train`, with --out); the README's EMA-decay comparison was run this way."""
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from gankit import cli
from gankit.training import checkpoint
from gankit.training import ema as ema_mod

decays = [float(d) for d in sys.argv[1].split(",")]
args = sys.argv[2:]
extras: list[ema_mod.EMA] = []
orig_init, orig_update = ema_mod.EMA.__init__, ema_mod.EMA.update


def init(self, model, decay, warmup=True):
    orig_init(self, model, decay, warmup)
    if not extras:  # the first EMA training builds; the extras skip this patched __init__
        for d in decays:
            e = ema_mod.EMA.__new__(ema_mod.EMA)
            orig_init(e, model, d, warmup)
            extras.append(e)
        self._extras = list(extras)


def update(self, model):
    orig_update(self, model)
    for e in getattr(self, "_extras", []):
        orig_update(e, model)


ema_mod.EMA.__init__, ema_mod.EMA.update = init, update
try:
    cli.main(["train", *args])
except SystemExit as e:
    if e.code not in (0, None):
        raise
out = Path(args[args.index("--out") + 1])
final = checkpoint.find_generator_checkpoint(out)
with safe_open(str(final), framework="pt") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
step = int(meta["step"])
for e in extras:
    assert e.updates == step, (e.updates, step)
    for k, v in e.model.state_dict().items():
        assert "G_ema." + k in tensors
        tensors["G_ema." + k] = v.detach().cpu().contiguous()
    dst = out / f"final-ema{e.decay}.safetensors"
    save_file(tensors, str(dst), metadata=meta)
    print(f"wrote {dst} (decay {e.decay}, {e.updates} updates)", flush=True)
