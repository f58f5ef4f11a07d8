"""The ``gankit`` command line. Every user error ends as one ``error:`` line and exit code 2."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click

from gankit.errors import GankitError
from gankit.malloc import keep_freed_memory, malloc_mode

DATA_HELP = "CIFAR-10 folder or archive (default: $GANKIT_DATA_DIR, else the user cache)"
INCEPTION_HELP = "FID Inception weights (default: $GANKIT_INCEPTION, else the user cache)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Train, evaluate and report DCGAN / SNGAN / SAGAN on CIFAR-10, CIFAR-100 or your images."""
    keep_freed_memory()


@cli.command()
@click.option("--preset", default="dcgan", show_default=True, help="preset name or YAML file")
@click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--out", type=click.Path(path_type=Path), help="run folder (default runs/NAME-TIME)")
@click.option("--epochs", type=click.IntRange(min=1), help="override train.epochs")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True),
              help="time budget (train.minutes): stop with a checkpoint and final FID")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="config override")
@click.option("--resume", type=click.Path(path_type=Path), help="continue this run folder")
@click.option("--fid-every", type=click.IntRange(min=0), help="FID every E epochs (0: off)")
@click.option("--fid-n", type=click.IntRange(min=2), help="generated images per FID")
@click.option("--data", "dataset", help="training images (data.dataset): cifar10, cifar100, a "
              "folder or .zip of images, or an .npz/.npy uint8 array")
@click.option("--fid-ref", help="FID reference: train (the training data), test, a slice like "
              "test[0:1000], another source (folder, zip, cifar10:test) or a mu/sigma .npz")
@click.option("--fid-pr", is_flag=True, default=None,
              help="also precision/recall, density/coverage with each FID (train.fid_pr)")
@click.option("--fid-intra", is_flag=True, default=None,
              help="a conditional run: also intra-FID with each FID (train.fid_intra)")
@click.option("--inception", type=click.Path(path_type=Path), help=INCEPTION_HELP)
@click.option("--tensorboard", is_flag=True, default=None,
              help="also log to RUN/tensorboard (train.tensorboard; needs tensorboard)")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(preset, data_dir, out, epochs, minutes, overrides, resume, dataset, fid_every, fid_n,
          fid_ref, fid_pr, fid_intra, inception, tensorboard, progress) -> None:
    """Train a GAN; `gankit train` alone trains the dcgan preset on CIFAR-10."""
    import signal

    from gankit.config import apply_overrides, resolve, validate
    from gankit.training.loop import TrainingStopped, load_run_config, load_training_images
    from gankit.training.loop import train as run_train

    extra = list(overrides)
    for key, val in (("epochs", epochs), ("minutes", minutes), ("fid_every", fid_every),
                     ("fid_n", fid_n), ("fid_ref", fid_ref), ("fid_pr", fid_pr),
                     ("fid_intra", fid_intra), ("tensorboard", tensorboard)):
        if val is not None:
            extra.append(f"train.{key}={val}")
    if dataset is not None:
        extra.append(f"data.dataset={dataset}")
    if resume:
        if overrides or dataset is not None:
            raise GankitError("--set/--data cannot change a run being resumed; start a new --out")
        run_dir = resume
        cfg = validate(apply_overrides(load_run_config(run_dir).model_dump(mode="json"), extra))
    else:
        cfg = resolve(preset, extra)
        run_dir = out or Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"
    from gankit.config import lipschitz_warnings

    for line in lipschitz_warnings(cfg):
        click.echo(f"warning: {line}", err=True)
    images = load_training_images(cfg, data_dir)
    evaluator = None
    if cfg.train.fid_every:  # sharded over DDP ranks; rank 0 holds the reference
        from gankit.metrics.training import TrainingFID

        evaluator = TrainingFID(cfg, data_dir, inception,
                                reference=os.environ.get("RANK", "0") == "0")
    from gankit.reports.plots import plot_run

    try:
        trainer = run_train(cfg, run_dir, images, resume=bool(resume), progress=progress,
                            evaluator=evaluator, on_epoch=plot_run)
    except TrainingStopped as stop:
        name = signal.Signals(stop.signum).name if stop.signum else "signal"
        click.echo(f"\nstopped by {name} at step {stop.step}; checkpoint written; continue with: "
                   f"gankit train --resume {run_dir}", err=True)
        sys.exit(128 + stop.signum)
    msg = f"done: {run_dir} (epoch {trainer.progress_epoch:g}, step {trainer.global_step})"
    if trainer.best:
        msg += f", best FID {trainer.best['fid']:.2f} at epoch {trainer.best['epoch']:g}"
    click.echo(msg)


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=64, show_default=True,
              help="images to sample (under torchrun spell it -n: torchrun reads --n as its own)")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="FILE.png (grid), FILE.npz (uint8 'images'), or a folder of PNGs")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--raw", is_flag=True, help="the trained G weights, not their EMA (when kept)")
@click.option("--interpolate", "steps", type=click.IntRange(min=2),
              help="N rows of STEPS images between two latents (slerp): a .png grid or a .gif")
@click.option("--class", "class_", metavar="K", help="a conditional run: only class K (index "
              "or name); with --interpolate, every row within class K")
@click.option("--per-class", type=click.IntRange(min=1), metavar="N",
              help="a conditional run: N images of every class, class-major (an .npz also "
              "stores 'labels'; a folder gets one sub-folder per class)")
def generate(checkpoint, n, out, seed, raw, steps, class_, per_class) -> None:
    """Sample N images from a checkpoint (or a run folder: its best, else latest); a
    class-conditional run samples every class equally often unless --class picks one."""
    import numpy as np
    import torch

    from gankit.generate import (
        class_index,
        interpolate,
        load_generator,
        run_classes,
        sample_images,
        sample_labels,
        write_images,
    )
    from gankit.metrics.shards import join

    suffixes = (".png", ".gif") if steps else (".png", ".npz", "")
    if Path(out).suffix.lower() not in suffixes:
        raise GankitError(f"--out {out}: use " + ("a .png grid or a .gif animation with "
                          "--interpolate" if steps else "a .png (grid), .npz (array) or a folder name"))
    if class_ is not None and per_class is not None:
        raise GankitError("--class and --per-class exclude each other")
    world = join()  # under torchrun every rank samples its share, rank 0 writes
    g, cfg, epoch = load_generator(checkpoint, raw=raw)
    label = None if class_ is None else class_index(cfg, run_classes(checkpoint), class_)
    if per_class is not None and not cfg.cond.n_classes:
        raise GankitError("--per-class needs a class-conditional run; this one is "
                          "unconditional (cond.n_classes is 0)")
    if steps:
        if not world.main:  # a few hundred images: rank 0 alone
            return
        from gankit.reports.images import make_grid, save_gif, save_grid

        imgs = interpolate(g, n, steps, seed, label)
        if Path(out).suffix.lower() == ".gif":  # frame k: the k-th image of every row
            frames = [make_grid(imgs.reshape(n, steps, *imgs.shape[1:])[:, k]) for k in range(steps)]
            save_gif(out, frames + frames[-2:0:-1], ms_per_frame=120, last_ms=120)
        else:
            save_grid(out, imgs, ncol=steps)
        click.echo(f"wrote {n} interpolations of {steps} steps from epoch {epoch} to {out}")
        return
    ncol = None
    if per_class is not None:  # class-major: per_class images of class 0, then class 1, ...
        k = cfg.cond.n_classes
        n, ncol = per_class * k, per_class
        labels = torch.arange(k).repeat_interleave(per_class)
    else:
        labels = sample_labels(g, n, label)
    parts = world.gather(sample_images(g, n, seed, labels=labels, part=world.part(n)))
    if parts is None:
        return
    kind = write_images(np.concatenate(parts), out, labels, ncol)
    what = "" if labels is None else (f" of class {class_}" if label is not None else
                                      ", class-balanced")
    click.echo(f"wrote {n} images ({kind}{what}) from epoch {epoch} to {out}")


def _extractor(inception, mode, precision, batch_size):
    from gankit.metrics.inception import FeatureExtractor

    return FeatureExtractor(inception, mode=mode, precision=precision, batch_size=batch_size)


def fid_options(f):
    for opt in reversed([
        click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_HELP),
        click.option("--inception", type=click.Path(path_type=Path), help=INCEPTION_HELP),
        click.option("--mode", type=click.Choice(["tf", "pytorch-fid"]), default="tf",
                     show_default=True, help="preprocessing (tf reproduces the TF reference)"),
        click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
                     show_default=True, help="Inception precision (fp32 for reported numbers)"),
        click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True),
    ]):
        f = opt(f)
    return f


resolution_option = click.option(
    "--resolution", type=click.IntRange(min=8, max=1024),
    help="center-crop and resize image sources to this size (default: native; needed when a "
    "folder mixes sizes)")


@cli.command()
@click.argument("a")
@click.argument("b")
@fid_options
@resolution_option
@click.option("-n", "--n", "n", type=click.IntRange(min=2), default=10000, show_default=True,
              help="images generated from a checkpoint side (-n under torchrun)")
@click.option("--kid", "with_kid", is_flag=True, help="also report KID (mean +- std)")
@click.option("--pr", "with_pr", is_flag=True,
              help="also precision/recall and density/coverage (k=3) of A against B (real)")
@click.option("--intra", "with_intra", is_flag=True,
              help="also intra-FID: the mean over classes of per-class FIDs (a conditional run "
              "vs labelled data, e.g. cifar10:train)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON record")
def fid(a, b, data_dir, inception, mode, precision, batch_size, resolution, n, with_kid, with_pr,
        with_intra, as_json) -> None:
    """FID between A and B: each cifar10/cifar100[:SPLIT][a:b], a folder or .zip of images,
    an .npz/.npy array, a mu/sigma statistics .npz, or a checkpoint / run folder. Under
    torchrun every rank generates and embeds its share of the images."""
    import json

    from gankit.metrics.shards import join
    from gankit.metrics.sources import compare, compare_stats, load_source

    world = join()
    sa, sb = (load_source(s, data_dir=data_dir, n=n, resolution=resolution, world=world)
              for s in (a, b))
    if sa.stats is not None and sb.stats is not None and not (with_kid or with_pr or with_intra):
        if not world.main:
            return
        rec = compare_stats(sa, sb, mode)  # two mu/sigma files: no network needed
        how = "statistics files"
    else:
        ext = _extractor(inception, mode, precision, batch_size)
        rec = compare(sa, sb, ext, with_kid=with_kid, with_pr=with_pr, with_intra=with_intra,
                      progress=not as_json, world=world)
        if rec is None:  # not rank 0
            return
        how = f"{precision}, {rec['seconds']:.0f} s"
        if world.size > 1:
            rec["ranks"] = world.size
            how += f", {world.size} ranks"
    if as_json:
        click.echo(json.dumps(rec, sort_keys=True))
        return
    n_a, n_b = (rec[k] or "?" for k in ("n_a", "n_b"))  # ?: a statistics file without N
    click.echo(f"{n_a} vs {n_b} images, mode {mode}, {how}")
    line = f"FID: {rec['fid']:.4f}"
    if with_kid:
        line += f"  KID: {rec['kid_mean']:.5f} +- {rec['kid_std']:.5f}"
    click.echo(line)
    if with_pr:
        click.echo("precision {precision:.4f}  recall {recall:.4f}  density {density:.4f}  "
                   "coverage {coverage:.4f}  (k={pr_k}, {pr_n_fake} vs {pr_n_real})".format(**rec))
    if with_intra:
        per = rec["intra_fid_per_class"]
        click.echo(f"intra-FID: {rec['intra_fid']:.4f} over {len(per)} classes (" +
                   ", ".join(f"{c}: {v:.2f}" for c, v in per.items()) + ")")


@cli.command("fid-stats")
@click.argument("source")
@fid_options
@resolution_option
@click.option("-o", "--out", type=click.Path(path_type=Path), help="also save the stats here")
def fid_stats(source, data_dir, inception, mode, precision, batch_size, resolution, out) -> None:
    """Compute (and cache) FID statistics of SOURCE (any source `gankit fid` takes); under
    torchrun every rank embeds its share."""
    from gankit.metrics.shards import join
    from gankit.metrics.sources import load_source, source_stats, stats_cache_path

    world = join()
    src = load_source(source, data_dir=data_dir, resolution=resolution, world=world)
    ext = _extractor(inception, mode, precision, batch_size)
    stats, _ = source_stats(src, ext, progress=True, world=world)
    if stats is None:  # not rank 0
        return
    if out:
        stats.save(out)
    where = out or (stats_cache_path(src.cache_key, ext) if src.cache_key else None)
    click.echo(f"{source}: {stats.n} images, mode {mode}; statistics at {where}")


@cli.command("fid-baselines")
@fid_options
@click.option("--n", "n", type=click.IntRange(min=2, max=5000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def fid_baselines(data_dir, inception, mode, precision, batch_size, n, seed, as_json) -> None:
    """Real-vs-real FID at N images: train halves, test halves, train vs test."""
    import json

    from gankit.metrics.baselines import baselines

    ext = _extractor(inception, mode, precision, batch_size)
    rec = baselines(ext, data_dir, n, seed)
    if as_json:
        click.echo(json.dumps(rec, sort_keys=True))
        return
    for k in ("train_vs_train", "test_vs_test", "train_vs_test"):
        click.echo(f"{k:15s} FID {rec[k]:.3f}  (N={n} per side, mode {mode})")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench.json"),
              show_default=True, help="JSON results")
@click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--inception", type=click.Path(path_type=Path), help=INCEPTION_HELP)
@click.option("--steps", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--fid-n", type=click.IntRange(min=10), default=2500, show_default=True)
@click.option("--skip-fid", is_flag=True, help="training benchmark only")
@click.option("--skip-scaling", is_flag=True)
@click.option("--skip-keras", is_flag=True, help="do not run the TensorFlow anchor")
@click.option("--profile", "profile_presets", metavar="PRESETS",
              help="instead: where the time goes, an op table per preset (comma-separated, "
              "e.g. dcgan,sagan,cpu), from torch.profiler over the tuned step")
def bench(out, data_dir, inception, steps, repeats, fid_n, skip_fid, skip_scaling,
          skip_keras, profile_presets) -> None:
    """Side-by-side speed: gankit vs a plain fp32 eager loop (and Keras); roofline shares."""
    import torch

    from gankit import bench as b
    from gankit.io import write_json
    from gankit.training.record import versions
    from gankit.training.tuner import device_name

    log = click.echo
    log(f"machine: {device_name(torch.device('cpu'))}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, malloc {malloc_mode()}")
    if profile_presets:
        from gankit.bench.ops import format_table, op_table
        from gankit.config import resolve

        tables = []
        for name in (p.strip() for p in profile_presets.split(",") if p.strip()):
            tables.append(op_table(resolve(name), steps=max(steps, 3)))
            log(format_table(tables[-1]))
        write_json(out, {"versions": versions(), "ops": tables})
        return
    with b.plain_process() as pool:
        b.check_plain(pool)
        res = {"versions": versions(), "malloc": malloc_mode(), "training": b.bench_training(
            ["dcgan", "sndcgan", "sagan"], [None, 64], steps, repeats, 2, False, log, pool)}
        dc = next(r for r in res["training"] if r["preset"] == "dcgan" and r["batch_kind"] == "preset")
        sa = next(r for r in res["training"] if r["preset"] == "sagan" and r["batch"] == 64)
        log(f"dcgan speedup vs fp32 eager: {dc['speedup']:.2f}x")
        log(f"sagan batch 64 speedup vs fp32 eager: {sa['speedup']:.2f}x")
        res["roofline"] = b.bench_roofline(res["training"], log)
        if not skip_keras:
            res["keras"] = b.bench_keras(dc, max(steps, 5), log)
        if not skip_scaling:
            res["scaling"] = b.bench_scaling([32, 64, 128], [0.5, 1.0], log)
        if not skip_fid:
            f = res["fid"] = b.bench_fid(data_dir, inception, fid_n, log, pool)
            speed = f["gankit bf16"]["images_per_s"] / f["fp32 reference"]["images_per_s"]
            dfid = abs(f["gankit bf16"]["fid"] - f["gankit fp32"]["fid"])
            res["fid_feature_speedup"], res["fid_abs_delta"] = speed, dfid
    if not skip_fid:
        from gankit.bench.roofline import share

        peaks, gf = res["roofline"]["peak_gflops"], f["gflop_per_image"]
        res["fid_roofline"] = {k: share(f[f"gankit {k}"]["images_per_s"], gf, peaks[k])
                               for k in ("fp32", "bf16") if k in peaks}
        log("fid features roofline: " + ", ".join(
            f"gankit {k} {v:.0%} of {k} peak" for k, v in res["fid_roofline"].items()) +
            f" ({gf:.2f} GFLOP per 299x299 image)")
        log(f"fid feature speedup: {speed:.2f}x, |dFID| = {dfid:.4f}")
    write_json(out, res)


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True)
@click.option("--title", default="gankit report", show_default=True)
@click.option("--epochs", help="sample-grid epochs to show, e.g. 10,20,50,100,150,200")
@click.option("--baselines", type=click.Path(path_type=Path),
              help="JSON from `gankit fid-baselines --json`")
def report(runs, out, title, epochs, baselines) -> None:
    """One self-contained HTML report comparing RUNS."""
    from gankit.reports.html import render

    wanted = None
    if epochs:
        try:
            wanted = [int(e) for e in epochs.split(",") if e.strip()]
        except ValueError:
            raise GankitError(f"--epochs expects integers like 10,20,50, got {epochs!r}") from None
    render(list(runs), out, title=title, epochs=wanted, baselines=baselines)
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("spec")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--inception", type=click.Path(path_type=Path), help=INCEPTION_HELP)
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True),
              help="training budget per variant and seed (overrides the file's minutes)")
@click.option("--seeds", type=click.IntRange(min=1),
              help="train every variant with seeds 0..K-1 (overrides the file's seeds)")
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep(spec, out, data_dir, inception, minutes, seeds, progress) -> None:
    """Train and FID-score the variants in SPEC (a YAML file, or a shipped sweep name)."""
    from importlib import resources

    from gankit.sweep import run_sweep

    path = Path(spec)
    if not path.is_file():
        shipped = resources.files("gankit") / "sweeps" / f"{spec}.yaml"
        if not shipped.is_file():
            raise GankitError(f"sweep file not found: {spec}")
        path = Path(str(shipped))
    from gankit.metrics.protocol import fmt

    results = run_sweep(path, out, data_dir, inception, progress, minutes=minutes, seeds=seeds)
    for r in results:
        click.echo(f"{fmt(r['best']):>16s}  ({len(r['seeds'])} seed(s))  {r['name']}")
    click.echo(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'report.html'}")


@cli.command()
@click.argument("name", type=click.Choice(["dcgan-vs-sagan"]))
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_HELP)
@click.option("--inception", type=click.Path(path_type=Path), help=INCEPTION_HELP)
@click.option("--epochs", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True),
              help="training budget per model and seed (train.minutes); the run stops within "
              "one step of it and resumes where it stopped")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="train each model with seeds 0..K-1; tables give mean ± std and a 95% "
              "interval")
@click.option("--fid-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="epochs between FIDs during training (the curve)")
@click.option("--fid-n", type=click.IntRange(min=2), default=500, show_default=True,
              help="generated images per FID during training")
@click.option("--select-ref", default="test[5000:6000]", show_default=True,
              help="the split whose FID picks the best checkpoint (disjoint from the reported)")
@click.option("--ref-n", type=click.IntRange(min=2, max=5000), default=1000, show_default=True,
              help="N of the reference design's protocol (N generated vs test[0:N])")
@click.option("--draws", type=click.IntRange(min=1), default=5, show_default=True,
              help="sample draws averaged in the reference protocol")
@click.option("--standard-n", type=click.IntRange(min=2), default=10000, show_default=True)
@click.option("--standard-ref", default="train", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--progress/--no-progress", default=True, show_default=True)
def study(name, out, data_dir, inception, epochs, minutes, seeds, fid_every, fid_n, select_ref,
          ref_n, draws, standard_n, standard_ref, overrides, progress) -> None:
    """Reproduce reference design 2: sndcgan vs sagan under its protocol, with a report."""
    from gankit.metrics.protocol import fmt
    from gankit.study import Protocol, run_study

    protocol = Protocol(fid_every=fid_every, track_n=fid_n, select=select_ref, ref_n=ref_n,
                        draws=draws, standard_n=standard_n, standard_ref=standard_ref)
    res = run_study(out, data_dir, inception, epochs=epochs, minutes=minutes, seeds=seeds,
                    protocol=protocol, overrides=list(overrides), progress=progress)
    for s in res["summary"]:
        click.echo(f"{s['model']:8s} {s['which']:5s} ({s['seeds']} seed(s))  "
                   f"FID-{ref_n} vs test {fmt(s['fid_ref'])}  "
                   f"FID-{standard_n} vs {standard_ref} {fmt(s['fid_standard'])}")
    click.echo(f"wrote {out / 'study.json'}, {out / 'report.html'}")


@cli.command()
@click.argument("root", required=False, default="runs", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON list instead of the table")
def runs(root, as_json) -> None:
    """Every run under ROOT (default ./runs): progress, best FID, wall time, status; runs in
    NAME/seed-S folders also grouped per NAME (mean ± std over seeds)."""
    import json

    from gankit.reports.runs import find_runs, group_seeds, group_table, summarize, table

    if not root.is_dir():
        raise GankitError(f"{root} is not a folder; pass the folder that holds your runs")
    rows = [summarize(r) for r in find_runs(root)]
    groups = group_seeds(rows)
    if as_json:
        click.echo(json.dumps({"runs": rows, "seed_groups": groups} if groups else rows,
                              indent=2))
    elif not rows:
        click.echo(f"no gankit runs under {root}")
    else:
        click.echo(table(rows))
        if groups:
            click.echo("\nseed groups (mean ± std of the best FIDs):\n" + group_table(groups))


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="gankit", standalone_mode=False)
    except GankitError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as err:  # usage errors: one line too, with the fix in --help
        click.echo(f"error: {err.format_message()} (see gankit --help)", err=True)
        sys.exit(2)
    except OSError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
