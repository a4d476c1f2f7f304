"""Side by side with timm's own ``train.py``: training images/s per epoch on the same data, model and settings.

    python bench/vs_timm.py --timm-train /path/to/pytorch-image-models/train.py
                            [--images 2000] [--model test_resnet] [--image-size 112] [--batch-size 32]
                            [--workers 2] [--epochs 3] [--repeats 3] [--device cpu|cuda] [--threads N]
                            [--out DIR] [--write-docs]

timm's ``train.py`` is not part of the timm wheel: it lives in the public repository. Get the one that
matches the installed timm (nothing of it is copied here; this script only runs it)::

    git clone --depth 1 --branch v$(python -c "import timm; print(timm.__version__)") \\
        https://github.com/huggingface/pytorch-image-models /tmp/timm-src    # or without --branch

What runs, on ``--images`` photo-like 640x480 JPEGs (``bench/scan.py``'s generator, 5 classes):

- **timm**: ``python train.py --data-dir D`` with ``D/train`` (3/4 of the images) and ``D/validation``
  (1/4), ``--no-prefetcher`` on a CPU, its default training transforms (RandomResizedCrop scale
  0.08-1, horizontal flip, ColorJitter 0.4, decoded from the JPEG at every read);
- **engine**: one fold of a ``k=4`` run (no holdout) over the same images (hard links of train +
  validation in one class-folder dataset), so the fold trains on as many images (3/4) and validates on
  as many (1/4) as timm does; trained by the engine's job process, ``python -m engine run-job RUN
  --folds 0`` (what ``python -m engine train`` runs for each fold), with the run created beforehand
  by :func:`engine.training.create_runs` (what ``train`` does first). The augmentation is the
  albumentations pipeline of timm's defaults (same crop scale and ratio, flip, ColorJitter 0.4), read
  through the engine's decoded-image cache.

Both: the same timm model (random init), image size, batch size, AdamW (lr 1e-3, weight decay 0.05),
cosine schedule without warmup, no label smoothing, ``--workers`` DataLoader workers; fp32 on a CPU
(``--threads N`` sets OMP_NUM_THREADS for both: on a shared machine one thread avoids the stalls of
torch's threads waiting for each other while other jobs hold the cores); on CUDA bf16 autocast and
channels_last (timm: ``--amp --amp-dtype bfloat16 --channels-last`` with its GPU prefetcher).

Images/s per epoch come from each tool's own record: timm's log (the last ``Train:`` line of an epoch
gives the epoch's mean update time, including the waits for data; with ``drop_last`` every batch is
full, so batch size / mean time = images / seconds of the epoch's loop) and the engine's
``metrics.csv`` (``images_per_second``: images / seconds of the epoch's training loop). Neither
counts validation. The engine builds its decoded-image cache once, before its first epoch (reused
by every later fold and run); the table also gives epoch 1 with that build counted in.

Contenders run back to back (``--repeats`` alternates their order); the load average and the CPU
seconds of each command (its process and DataLoader workers) are recorded around it. Then, in this
process, the CPU milliseconds per image of each side's input pipeline (timm's ``create_transform`` with
train.py's defaults on its ``ImageDataset``; the engine's ``AugmentedImages`` over its cache) and of
the model step, on one thread: where the time goes, a figure the machine's load hardly moves. The script prints a JSON record and a ready-to-paste markdown table; ``--write-docs``
replaces the ``<!-- vs-timm -->`` block of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DOCS = REPO / "docs" / "BENCHMARKS.md"
BLOCK_START, BLOCK_END = "<!-- vs-timm -->", "<!-- /vs-timm -->"
K_FOLDS = 4  # the engine's fold 0 trains on 3/4 and validates on 1/4: timm's train / validation sizes
GET_TIMM = ('git clone --depth 1 --branch v$(python -c "import timm; print(timm.__version__)") '
            "https://github.com/huggingface/pytorch-image-models /tmp/timm-src")
# One line per logged batch of timm's train_one_epoch: "Train: 2 [  45/46 (100%)] ... Time: 0.61s, 52.1/s
# (0.66s, 48.3/s) ... Data: 0.010 (0.021)". The bracketed figures are the epoch's running means.
TIMM_TRAIN_LINE = re.compile(
    r"Train: (?P<epoch>\d+) \[\s*(?P<update>\d+)/(?P<updates>\d+).*?"
    r"Time: [\d.]+s,\s*[\d.]+/s\s+\((?P<mean_s>[\d.]+)s,\s*(?P<rate>[\d.]+)/s\).*?"
    r"Data: [\d.]+ \((?P<data_s>[\d.]+)\)")
ENGINE_TIMESTAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=f"Get timm's train.py with: {GET_TIMM}")
    p.add_argument("--timm-train", required=True, metavar="PATH",
                   help="timm's train.py (from a clone of huggingface/pytorch-image-models)")
    p.add_argument("--images", type=int, default=2000, help="JPEGs in all (3/4 train, 1/4 validation)")
    p.add_argument("--model", default="test_resnet", help="timm model name (random init)")
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, for both")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=3, help="runs of each contender, in alternating order")
    p.add_argument("--device", default="cpu", help="cpu | cuda (for both)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of both training processes (OMP_NUM_THREADS); default: torch's (every core)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per contender run")
    p.add_argument("--out", default=None, help="folder for images, runs and logs (kept; default: a temporary one)")
    p.add_argument("--write-docs", action="store_true", help="replace the vs-timm block of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    args.timm_train = check_timm_train(p, args.timm_train)
    for name in ("images", "image_size", "batch_size", "epochs", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"The '--{name.replace('_', '-')}' parameter must be a positive int. Got {getattr(args, name)}.")
    if args.threads is not None and args.threads < 1:
        p.error(f"The '--threads' parameter must be a positive int. Got {args.threads}.")
    if args.workers < 0:
        p.error(f"The '--workers' parameter must be >= 0. Got {args.workers}.")
    if args.images < 20 * args.batch_size:
        p.error(f"The '--images' parameter must be at least 20 x the batch size ({20 * args.batch_size}) so that "
                f"every class has full training batches and validation images. Got {args.images}.")
    if args.device not in ("cpu", "cuda"):
        p.error(f"The '--device' parameter must be 'cpu' or 'cuda'. Got {args.device!r} instead.")
    return args


def check_timm_train(parser: argparse.ArgumentParser, path: str) -> Path:
    """The resolved path of timm's train.py, or a parser error saying how to get one."""
    train = Path(path).expanduser()
    if train.is_dir():
        train = train / "train.py"
    if not train.is_file():
        parser.error(f"The '--timm-train' parameter must be the path of timm's train.py. Got {path!r}: no such "
                     f"file. timm's wheel does not ship it; get it from the public repository: {GET_TIMM}")
    text = train.read_text(encoding="utf-8", errors="replace")
    if "def train_one_epoch" not in text or "Train:" not in text:
        parser.error(f"The '--timm-train' parameter must be timm's train.py (the file defines train_one_epoch "
                     f"and logs 'Train:' lines). Got {str(train)!r}, which does not. Get it with: {GET_TIMM}")
    return train.resolve()


# ---------------------------------------------------------------- the data


def make_dataset(folder: Path, n: int) -> dict:
    """``n`` photo-like JPEGs as timm's layout (``folder/train``, ``folder/validation``, one sub-folder per
    class) and, as hard links of the same files, the engine's class-folder dataset (``folder/engine``)."""
    from scan import CLASSES, make_images

    marker = folder / "dataset.json"
    if marker.is_file() and json.loads(marker.read_text())["images"] == n:
        return json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    paths = make_images(folder, n)  # folder/train/class_k/img_i.jpg, class = i % CLASSES
    counts = {"train": 0, "validation": 0}
    for i, path in enumerate(paths):
        split = "validation" if (i // CLASSES) % K_FOLDS == K_FOLDS - 1 else "train"
        src = Path(path)
        if split == "validation":
            dst = folder / "validation" / src.parent.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = Path(shutil.move(src, dst))
        link = folder / "engine" / "images" / src.parent.name / src.name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, link)
        counts[split] += 1
    spec = folder / "engine" / "dataset.yaml"
    spec.write_text("format_version: 1\nname: vs-timm\nlayout: folder\ntrain:\n  images: images\n", encoding="utf-8")
    info = {"images": n, **counts, "timm_data_dir": str(folder), "engine_spec": str(spec),
            "megabytes": round(sum(p.stat().st_size for p in (folder / "engine" / "images").rglob("*.jpg")) / 1e6, 1)}
    marker.write_text(json.dumps(info), encoding="utf-8")
    return info


def timm_default_augment(image_size: int) -> dict:
    """timm's default training transforms, as an albumentations dict: RandomResizedCrop (scale 0.08-1, ratio
    3/4-4/3), horizontal flip p=0.5, ColorJitter 0.4 (brightness, contrast, saturation; no hue)."""
    import albumentations as A

    return A.to_dict(A.Compose([
        A.RandomResizedCrop(size=(image_size, image_size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.6, 1.4), hue=(0.0, 0.0), p=1.0),
    ]))


def engine_config(args: argparse.Namespace, spec: str) -> dict:
    """The engine's run config matching timm's command line."""
    return {
        "format_version": 1, "name": f"vs-timm-{args.model}", "dataset": spec,
        "model": {"name": args.model}, "image_size": args.image_size,
        "split": {"k": K_FOLDS, "seed": 0, "holdout_fraction": 0.0},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adamw", "lr": args.lr,
                  "weight_decay": args.weight_decay, "scheduler": "cosine", "warmup_epochs": 0,
                  "label_smoothing": 0.0, "num_workers": args.workers, "data_cache": True},
        "augment": timm_default_augment(args.image_size), "tta_views": ["identity"],
        "device": args.device, "seed": 0,
    }


def timm_command(args: argparse.Namespace, data_dir: str, output: Path, experiment: str) -> list[str]:
    """timm's train.py with the settings the engine's config states."""
    cmd = [sys.executable, str(args.timm_train), "--data-dir", data_dir, "--model", args.model, "--num-classes", "5",
           "--img-size", str(args.image_size), "-b", str(args.batch_size), "--opt", "adamw", "--lr", str(args.lr),
           "--weight-decay", str(args.weight_decay), "--sched", "cosine", "--warmup-epochs", "0",
           "--epochs", str(args.epochs), "--workers", str(args.workers), "--smoothing", "0", "--seed", "0",
           "--checkpoint-hist", "1", "--device", args.device, "--output", str(output), "--experiment", experiment]
    if args.device == "cpu":
        cmd.append("--no-prefetcher")  # its prefetcher needs CUDA streams
    else:
        cmd += ["--amp", "--amp-dtype", "bfloat16", "--channels-last", "--pin-mem"]
    return cmd


# ---------------------------------------------------------------- the logs


def parse_timm_log(text: str) -> dict[int, dict]:
    """Epoch (1-based) -> ``images_per_second``, ``seconds`` (the epoch's loop), ``updates``, ``data_share``
    (the mean wait for a batch over the mean update time), from the last ``Train:`` line of each epoch."""
    last: dict[int, re.Match] = {}
    for match in TIMM_TRAIN_LINE.finditer(text):
        last[int(match["epoch"])] = match
    epochs = {}
    for epoch, m in sorted(last.items()):
        updates, mean_s = int(m["updates"]), float(m["mean_s"])
        if int(m["update"]) != updates - 1:
            raise ValueError(f"timm's log stops inside epoch {epoch} (update {m['update']} of {updates})")
        epochs[epoch + 1] = {"images_per_second": float(m["rate"]), "seconds": round(updates * mean_s, 2),
                             "updates": updates, "data_share": round(float(m["data_s"]) / mean_s, 3)}
    if not epochs:
        raise ValueError("no 'Train:' line in timm's log: it did not train (see the log)")
    return epochs


def read_engine_epochs(run_dir: Path, fold: int = 0) -> dict[int, dict]:
    """Epoch -> ``images_per_second``, ``seconds`` from the run's ``metrics.csv`` (one fold)."""
    import pandas as pd

    metrics = pd.read_csv(run_dir / "metrics.csv")
    rows = metrics[metrics["fold"] == fold].sort_values("epoch")
    if rows.empty:
        raise ValueError(f"{run_dir / 'metrics.csv'} has no row for fold {fold}")
    return {int(r.epoch): {"images_per_second": float(r.images_per_second), "seconds": float(r.epoch_seconds)}
            for r in rows.itertuples()}


def engine_cache_seconds(log_text: str) -> float | None:
    """Seconds from the job's 'training on' line to its 'Decoded-image cache' line: opening the run's
    images (the cache build when cold, a reopen when warm), None when the log has not both."""
    start = re.search(ENGINE_TIMESTAMP + r".*training on ", log_text, re.M)
    built = re.search(ENGINE_TIMESTAMP + r".*Decoded-image cache ", log_text, re.M)
    if not (start and built):
        return None
    fmt = "%Y-%m-%d %H:%M:%S,%f"
    return round((datetime.strptime(built[1], fmt) - datetime.strptime(start[1], fmt)).total_seconds(), 2)


# ---------------------------------------------------------------- running them


def run_logged(cmd: list[str], log_path: Path, *, env: dict, cwd: Path, timeout: float) -> dict:
    """Run ``cmd`` with stdout + stderr into ``log_path``; wall seconds, CPU seconds of the command and its
    DataLoader workers (steadier than wall time on a shared machine), and the load average around it."""
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=timeout,
                              check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(_children_cpu_seconds() - cpu_before, 1),
            "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1), "log": str(log_path)}


def thread_env(args: argparse.Namespace) -> dict[str, str]:
    """The same torch thread count for both sides (none set: torch's default, one per core)."""
    return {} if args.threads is None else {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every finished descendant, workers included
    return usage.ru_utime + usage.ru_stime


def run_timm(args, data: dict, folder: Path, repeat: int) -> dict:
    out = folder / "timm-output"
    out.mkdir(parents=True, exist_ok=True)
    experiment = f"repeat{repeat}-{datetime.now():%H%M%S}"
    env = {**os.environ, **thread_env(args), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    record = run_logged(timm_command(args, data["timm_data_dir"], out, experiment), folder / f"timm-{repeat}.log",
                        env=env, cwd=folder, timeout=args.timeout)
    record["epochs"] = parse_timm_log(Path(record["log"]).read_text(encoding="utf-8"))
    shutil.rmtree(out / experiment, ignore_errors=True)  # checkpoints: ~100 MB per repeat for resnet18
    return record


def run_engine(args, data: dict, folder: Path, repeat: int) -> dict:
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    workspace = folder / "engine-workspace"
    (run_dir,) = create_runs(load_run_configs(engine_config(args, data["engine_spec"])), workspace=workspace)
    env = {**os.environ, **thread_env(args), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "engine", "run-job", str(run_dir), "--folds", "0"]
    record = run_logged(cmd, folder / f"engine-{repeat}.log", env=env, cwd=REPO, timeout=args.timeout)
    record["epochs"] = read_engine_epochs(Path(run_dir), fold=0)
    record["cache_seconds"] = engine_cache_seconds(Path(record["log"]).read_text(encoding="utf-8"))
    record["run_dir"] = str(run_dir)
    return record


def cpu_ms_per_item(fn, n: int) -> float:
    """CPU milliseconds (this process, every thread) per call of ``fn(i)``, i = 0..n-1."""
    start = time.process_time()
    for i in range(n):
        fn(i)
    return 1000 * (time.process_time() - start) / n


def pipeline_costs(args, data: dict, folder: Path) -> dict:
    """CPU ms per training image of each side's input pipeline (in one process, as a DataLoader worker
    runs it) and, on a CPU run, of the model step both share: where the time goes, steady under load."""
    import numpy as np
    import timm
    import torch
    from timm.data import ImageDataset, create_transform, resolve_data_config

    from engine.augment.pipeline import pipeline_from_dict
    from engine.data.decoded_cache import build_decoded_cache, stored_size_for
    from engine.training.data import AugmentedImages

    model = timm.create_model(args.model, num_classes=5)
    cfg = resolve_data_config({}, model=model)
    # What train.py builds with its defaults (--no-prefetcher): RandomResizedCrop, flip, ColorJitter 0.4,
    # random interpolation, ToTensor, Normalize, on each image decoded from its JPEG.
    timm_images = ImageDataset(str(Path(data["timm_data_dir"]) / "train"), transform=create_transform(
        args.image_size, is_training=True, color_jitter=0.4, interpolation="random", mean=cfg["mean"], std=cfg["std"]))
    paths = sorted(str(p) for p in (Path(data["engine_spec"]).parent / "images").rglob("*.jpg"))
    cache = build_decoded_cache(paths, stored_size_for(args.image_size), workspace=folder / "engine-workspace")
    engine_images = AugmentedImages(cache, np.zeros(len(paths), dtype=np.int64), args.image_size,
                                    pipeline=pipeline_from_dict(timm_default_augment(args.image_size)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.arange(args.batch_size) % 5

    def step(_):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    n = min(200, len(timm_images), len(engine_images))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker's setting; the model step on one thread too
    try:
        costs = {"timm_pipeline_ms": round(cpu_ms_per_item(lambda i: timm_images[i], n), 2),
                 "engine_pipeline_ms": round(cpu_ms_per_item(lambda i: engine_images[i], n), 2), "model_step_ms": None}
        if args.device == "cpu":  # on a GPU run the model step is not CPU work
            step(0)
            costs["model_step_ms"] = round(cpu_ms_per_item(step, 5) / args.batch_size, 2)
        return costs
    finally:
        torch.set_num_threads(threads)


def summarize(args, data: dict, runs: list[dict], machine: str, costs: dict | None = None) -> dict:
    """Per epoch: median images/s of each side over the repeats, and the median of the per-repeat ratios."""
    from importlib.metadata import version

    epochs = sorted(set.intersection(*(set(r[side]["epochs"]) for r in runs for side in ("timm", "engine"))))
    rows = []
    for e in epochs:
        timm_rates = [r["timm"]["epochs"][e]["images_per_second"] for r in runs]
        engine_rates = [r["engine"]["epochs"][e]["images_per_second"] for r in runs]
        rows.append({"epoch": e, "timm": statistics.median(timm_rates), "engine": statistics.median(engine_rates),
                     "ratio": round(statistics.median(b / a for a, b in zip(timm_rates, engine_rates, strict=True)), 3),
                     "timm_data_share": statistics.median(r["timm"]["epochs"][e]["data_share"] for r in runs)})
    first = runs[0]["engine"]
    cold = first.get("cache_seconds")
    epoch1 = first["epochs"][1]
    with_cache = None if cold is None else round(
        epoch1["images_per_second"] * epoch1["seconds"] / (epoch1["seconds"] + cold), 1)
    loads = [v for r in runs for side in ("timm", "engine") for v in (r[side]["load_before"], r[side]["load_after"])]
    return {
        "machine": machine, "device": args.device, "torch_threads": args.threads or _torch_threads(),
        "threads_set": args.threads is not None, "model": args.model,
        "image_size": args.image_size, "batch_size": args.batch_size, "workers": args.workers,
        "epochs": args.epochs, "repeats": args.repeats, "data": data, "timm_train": str(args.timm_train),
        "timm_version": version("timm"), "timm_train_version": checkout_version(args.timm_train),
        "torch_version": version("torch"), "rows": rows,
        "engine_cache_seconds_cold": cold, "engine_epoch1_with_cache_build": with_cache,
        "timm_epoch1_first_run": runs[0]["timm"]["epochs"][1]["images_per_second"],
        "load_range": [min(loads), max(loads)],
        "wall_seconds": {side: [r[side]["wall_seconds"] for r in runs] for side in ("timm", "engine")},
        "cpu_seconds": {side: [r[side].get("cpu_seconds") for r in runs] for side in ("timm", "engine")},
        "costs": costs, "runs": runs,
    }


def checkout_version(train: Path) -> str | None:
    """The timm version of the checkout ``train.py`` comes from (its ``timm/version.py``), when there is one."""
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", _read(Path(train).parent / "timm" / "version.py"))
    return match[1] if match else None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _of(r: dict) -> str:
    return f" at version {r['timm_train_version']}" if r.get("timm_train_version") else ""


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def markdown(r: dict) -> str:
    """The docs block: setup, the per-epoch table, what the figures mean."""
    d = r["data"]
    rows = "\n".join(
        f"| {row['epoch']} | {row['timm']:,.1f} | {row['engine']:,.1f} | **{row['ratio']:.2f}x** | "
        f"{100 * row['timm_data_share']:.0f}% |" for row in r["rows"])
    cache = ("" if r["engine_epoch1_with_cache_build"] is None else
             f" Counting the engine's cold cache build ({r['engine_cache_seconds_cold']:.1f} s for all "
             f"{d['images']:,} images, once per dataset and size) into epoch 1 of the first run, the engine's "
             f"epoch 1 is {r['engine_epoch1_with_cache_build']:,.1f} images/s against timm's "
             f"{r['timm_epoch1_first_run']:,.1f}.")
    walls, cpus = r["wall_seconds"], r["cpu_seconds"]
    c = r.get("costs")
    model_rows = "" if not (c and c.get("model_step_ms")) else f"""
| model step: forward, backward, AdamW ({r['model']}, {r['image_size']} px; the same code for both) | {c['model_step_ms']:.2f} | {c['model_step_ms']:.2f} |
| total | {c['timm_pipeline_ms'] + c['model_step_ms']:.2f} | {c['engine_pipeline_ms'] + c['model_step_ms']:.2f} |"""
    costs = "" if not c else f"""

Where the CPU goes, per training image (CPU milliseconds in one process on one thread, steady under load):

| CPU ms per image | timm `train.py` | engine |
|---|---:|---:|
| input pipeline: decode (timm) or cache read (engine), crop, flip, colour jitter, to tensor | {c['timm_pipeline_ms']:.2f} | {c['engine_pipeline_ms']:.2f} |{model_rows}

The engine's input pipeline costs {c['timm_pipeline_ms'] / max(c['engine_pipeline_ms'], 1e-9):.0f}x less CPU per image than timm's. That
becomes training speed wherever the loader's CPU competes with the model for the same cores (every
core busy with training, or a fast model on a GPU); where the workers have idle cores of their own and
the model is the bottleneck, both train at the model's speed."""
    low, high = r["load_range"]
    # The contenders alone load the machine by up to their training threads + workers: more means other jobs.
    own = int(r["torch_threads"] or _cores()) + int(r["workers"])
    busy = " The machine was shared with other users' jobs." if high > own + 0.5 else ""
    return f"""`python bench/vs_timm.py --timm-train /tmp/timm-src/train.py --images {d['images']} --model {r['model']} \\
  --image-size {r['image_size']} --batch-size {r['batch_size']} --workers {r['workers']} --epochs {r['epochs']} \\
  --repeats {r['repeats']} --device {r['device']}{f" --threads {r['torch_threads']}" if r.get('threads_set') else ''}`

Machine: {r['machine']}; {low:.1f}-{high:.1f} while the contenders ran.{busy} torch {r['torch_version']},
timm {r['timm_version']} installed (both sides); `train.py` from huggingface/pytorch-image-models{_of(r)}.
Data: {d['images']:,} photo-like 640x480 JPEGs ({d['megabytes']:,.0f} MB, 5 classes): {d['train']:,} to train on,
{d['validation']:,} to validate on, per epoch, for both. {r['model']} from scratch at {r['image_size']} px, batch
{r['batch_size']}, AdamW, {r['workers']} DataLoader workers, {r['device']} ({'fp32' if r['device'] == 'cpu' else 'bf16'}), torch threads
{r['torch_threads']} in both training processes.

| epoch | timm `train.py` images/s | engine images/s | engine / timm | timm's wait for data |
|---:|---:|---:|---:|---:|
{rows}

Images/s: the training loop of each epoch, from each tool's own record (timm's log, the engine's
`metrics.csv`), medians of {r['repeats']} run(s) of each, run back to back; the ratio is the median of
the per-run ratios. "Wait for data": share of timm's update time spent waiting for the next batch
(its `Data:` figure).{cache} Whole commands (validation, checkpoints / predictions and start-up included):
timm {_seconds(walls['timm'], cpus['timm'])}, engine {_seconds(walls['engine'], cpus['engine'])} (wall; CPU seconds
of the process and its workers in brackets, the steadier figure when other jobs share the cores).{costs}"""


def _seconds(walls: list[float], cpus: list[float | None]) -> str:
    return ", ".join(f"{w:.0f} s" + ("" if c is None else f" ({c:.0f} CPU-s)") for w, c in zip(walls, cpus, strict=True))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_docs(body: str, docs: Path = DOCS) -> None:
    """Replace the text between the vs-timm markers of ``docs`` (they must be there)."""
    text = docs.read_text(encoding="utf-8")
    head, found, rest = text.partition(BLOCK_START)
    _, found_end, tail = rest.partition(BLOCK_END)
    if not (found and found_end):
        raise SystemExit(f"{docs} has no {BLOCK_START} ... {BLOCK_END} block")
    docs.write_text(f"{head}{BLOCK_START}\n{body.strip()}\n{BLOCK_END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from scan import machine

    folder = Path(args.out).absolute() if args.out else Path(tempfile.mkdtemp(prefix="vs-timm-"))
    folder.mkdir(parents=True, exist_ok=True)
    host = machine()
    data = make_dataset(folder / "data", args.images)  # kept between invocations with --out
    for stale in ("engine-workspace", "timm-output"):  # the first engine run builds its cache cold
        shutil.rmtree(folder / stale, ignore_errors=True)
    print(f"data: {data}", file=sys.stderr)
    runs = []
    for repeat in range(args.repeats):
        order = ("timm", "engine") if repeat % 2 == 0 else ("engine", "timm")
        record = {}
        for side in order:
            print(f"repeat {repeat + 1}/{args.repeats}: {side} ...", file=sys.stderr, flush=True)
            record[side] = (run_timm if side == "timm" else run_engine)(args, data, folder, repeat)
            print(f"  {side}: {json.dumps(record[side]['epochs'])} ({record[side]['wall_seconds']} s)",
                  file=sys.stderr, flush=True)
        runs.append(record)
    print("profiling the input pipelines and the model step ...", file=sys.stderr, flush=True)
    result = summarize(args, data, runs, host, pipeline_costs(args, data, folder))
    (folder / "vs_timm.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    body = markdown(result)
    print(body)
    if args.write_docs:
        write_docs(body)
    print(f"logs and runs kept in {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
