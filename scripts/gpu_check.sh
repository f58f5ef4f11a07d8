#!/usr/bin/env bash
# The GPU check of issue 24, as one prepared command for a lent GPU machine (the `device` tool):
# each preset a few hundred steps under perf=auto (the tuner's choice and real images/s),
# FID-50k end to end (50k samples generated and embedded, against cached train statistics),
# a 2-rank torchrun of training (on one GPU: sharing it over gloo) and of the FID; one JSON and
# a Markdown table under OUT.
#
#   bash scripts/gpu_check.sh OUT                 # defaults sized for < 8 minutes on an H100/H200
#   STEPS=5 FID_N=100 REF="cifar10:test[0:100]" PRESETS="dcgan cpu-cond" bash scripts/gpu_check.sh OUT
#                                                   # a smoke run (on the CPU too)
#
# Needs GANKIT_DATA_DIR and GANKIT_INCEPTION (or the network to download them).
set -euo pipefail
OUT="${1:-gpu-check}"
STEPS="${STEPS:-300}"
FID_N="${FID_N:-50000}"
REF="${REF:-cifar10:train}"   # the FID reference; its statistics are computed (and cached) first
PRESETS="${PRESETS:-dcgan cpu cpu-cond sndcgan sagan sngan sngan-resnet sngan-cond}"
mkdir -p "$OUT"
timed() {  # timed NAME CMD...: run CMD, write its wall seconds to OUT/NAME.wall
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s.%N)
  "$@" || rc=$?
  python -c "print(round($(date +%s.%N) - $t0, 1))" > "$OUT/$name.wall"
  return $rc
}
python - "$OUT" <<'PY'
import json, sys, platform, torch
from gankit.training.tuner import device_name
out = sys.argv[1]
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "device": device_name(dev), "gpus": torch.cuda.device_count()}
json.dump(info, open(f"{out}/device.json", "w"), indent=1)
print(info)
PY
for p in $PRESETS; do
  # data.limit: exactly STEPS iterations in one epoch (n_real * n_dis real images per step)
  limit=$(python -c "from gankit.config import resolve; c = resolve('$p'); print($STEPS * c.train.n_real * c.optim.n_dis)")
  rm -rf "$OUT/$p"
  timed "$p" gankit train --preset "$p" --out "$OUT/$p" --epochs 1 \
      --set "data.limit=$limit" --set train.log_every=50 --no-progress > "$OUT/$p.log" 2>&1 \
      || echo "train $p failed (see $OUT/$p.log)"
done
gankit fid-stats "$REF" > "$OUT/fid-stats.log" 2>&1   # cached: the timing below is generation + FID
first=$(echo $PRESETS | cut -d' ' -f1)
timed fid gankit fid "$OUT/$first" "$REF" --n "$FID_N" --json \
    > "$OUT/fid.json" 2> "$OUT/fid.log" || echo "fid failed (see $OUT/fid.log)"
limit=$(python -c "from gankit.config import resolve; c = resolve('dcgan'); print($STEPS * c.train.n_real * 2)")
rm -rf "$OUT/ddp"
# one GPU: NCCL refuses two ranks on it, so the 2-rank check shares it over gloo
share=()
[ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ] || share=(--set perf.backend=gloo)
timed ddp torchrun --standalone --nproc_per_node=2 -m gankit.cli train \
    --preset dcgan --out "$OUT/ddp" --epochs 1 --set "data.limit=$limit" --no-progress \
    "${share[@]}" > "$OUT/ddp.log" 2>&1 || echo "torchrun failed (see $OUT/ddp.log)"
# sharded evaluation: 2 ranks generate and embed half each; rank 0 prints the FID
timed fid_ddp torchrun --standalone --nproc_per_node=2 -m gankit.cli fid "$OUT/$first" "$REF" \
    -n "$FID_N" --json > "$OUT/fid_ddp.json" 2> "$OUT/fid_ddp.log" \
    || echo "torchrun fid failed (see $OUT/fid_ddp.log)"
python - "$OUT" $PRESETS <<'PY'
import json, sys
from pathlib import Path
out, presets = Path(sys.argv[1]), sys.argv[2:]

def read(p):
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.is_file() else []

def wall(name):
    f = out / f"{name}.wall"
    try:
        return float(f.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None

rows = []
for p in presets + ["ddp"]:
    recs = read(out / p / "metrics.jsonl")
    steps = [r for r in recs if r.get("kind") == "step"]
    run = json.loads((out / p / "run.json").read_text()) if (out / p / "run.json").is_file() else {}
    rates = [r["real_images_per_s"] for r in steps[1:]] or [r["real_images_per_s"] for r in steps]
    rows.append({"run": p, "steps": steps[-1]["step"] if steps else 0,
                 "real_images_per_s": sorted(rates)[len(rates) // 2] if rates else None,
                 "tuner": run.get("perf", {}).get("label"), "wall_s": wall(p),
                 "world_size": run.get("runtime", {}).get("world_size")})
def last_json(name):
    f = out / f"{name}.json"
    lines = f.read_text().strip().splitlines() if f.is_file() else []
    return json.loads(lines[-1]) if lines else {}

fid, fid_ddp = last_json("fid"), last_json("fid_ddp")
res = {"device": json.loads((out / "device.json").read_text()), "runs": rows,
       "fid": {**fid, "wall_s": wall("fid")}, "fid_ddp": {**fid_ddp, "wall_s": wall("fid_ddp")}}
(out / "gpu_check.json").write_text(json.dumps(res, indent=1))
lines = ["| run | steps | real images / s (median window) | tuner choice | wall s |", "| --- | --- | --- | --- | --- |"]
for r in rows:
    ips = f"{r['real_images_per_s']:.0f}" if r["real_images_per_s"] else "failed"
    lines.append(f"| {r['run']} | {r['steps']} | {ips} | {r['tuner'] or '-'} | {r['wall_s'] or '-'} |")
if fid:
    lines.append(f"\nFID-{fid.get('n_a')} of `{presets[0]}` vs {fid.get('b')}: {fid.get('fid'):.2f}, "
                 f"end to end {res['fid']['wall_s']} s (sampling + Inception + Fréchet; reference statistics cached)")
if fid_ddp:
    lines.append(f"\nThe same under `torchrun --nproc_per_node=2` (sharded): FID {fid_ddp.get('fid'):.2f}, "
                 f"{res['fid_ddp']['wall_s']} s")
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
