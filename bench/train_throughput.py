"""Training throughput: the engine's fold loop against a plain reference loop, and the pipeline efficiency.

    python bench/train_throughput.py [--model resnet18] [--image-size 64] [--batch-size 64] [--device auto]
                                     [--source demo|jpeg] [--images 1024] [--workers N] [--batches 12]
                                     [--repeats 3] [--write-docs]

    # on a GPU (H100 / H200):
    python bench/train_throughput.py --model resnet50 --image-size 224 --batch-size 128 --source jpeg --device cuda
    python bench/train_throughput.py --model convnext_tiny --image-size 224 --batch-size 128 --source jpeg --device cuda

Same data, same model (random init), same batch size, same optimizer (AdamW) in one process:

1. **engine** - the engine's fold loop (``engine.training.fit.build_fold_parts`` + ``train_one_epoch``)
   on a run created in a temporary workspace: uint8 CHW tensors from the DataLoader workers (pinned
   on CUDA), normalization on the device, channels_last and bf16 autocast on CUDA;
2. **reference** - the loop written the obvious way: ``PIL.Image.open(path).convert("RGB")``, the same
   albumentations pipeline + ``A.Resize`` + ``A.Normalize`` + ``ToTensorV2`` in the workers, a plain
   DataLoader, ``.to(device)``, the same autocast (so the model's own cost is the same);
3. **synthetic** - the engine's model step on normalized tensors already on the device: what training
   would cost if the input pipeline were free.

Pipeline efficiency = real-data images/s / synthetic images/s (1.0: the input pipeline costs nothing).
Each measurement times ``--batches`` batches after two warm-up batches; the three alternate
``--repeats`` times and the median is reported, so a busy machine blurs all three alike.
``--source demo`` uses the demo digits (32x32 PNGs); ``--source jpeg`` writes photo-like 640x480
JPEGs (as bench/scan.py does), which makes decoding and resizing cost what they cost on real data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from docs_section import DOCS, header, split_section  # noqa: E402

MARKER = "<!-- train -->"


# ---------------------------------------------------------------- data


def jpeg_dataset(folder: Path, images: int, classes: int = 5) -> Path:
    """A folder-layout dataset of photo-like 640x480 JPEGs; returns the spec path."""
    from scan import _photo_like  # the scan benchmark's photo-like images

    from engine.data import open_dataset

    for i in range(images):
        path = folder / "train" / f"c{i % classes}" / f"img_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _photo_like(i).save(path, quality=90)
    return open_dataset(folder / "train").spec_path


def demo_dataset(folder: Path) -> Path:
    from engine.data.demo import make_demo_dataset

    return make_demo_dataset(folder / "digits-demo")


def create_run(spec: Path, workspace: Path, args) -> Path:
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    config = {"dataset": str(spec), "model": {"name": args.model}, "image_size": args.image_size,
              "device": args.device, "split": {"k": 2, "holdout_fraction": 0.0},
              "train": {"epochs": 1, "batch_size": args.batch_size, "num_workers": args.workers, "lr": 1e-3,
                        "scheduler": "none", "mixed_precision": True}}
    return create_runs(load_run_configs(config), workspace=workspace)[0]


# ---------------------------------------------------------------- the three loops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(step, batches, device: torch.device, n: int) -> float:
    """Images/s over ``n`` batches after two warm-up batches (``batches`` restarts when exhausted)."""
    it, images, start = iter(batches()), 0, None
    for i in range(n + 2):
        if i == 2:
            _sync(device)
            start = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches())
            x, y = next(it)
        step(x, y)
        images += len(y) if i >= 2 else 0
    _sync(device)
    return images / (time.perf_counter() - start)


def engine_loop(run_dir: Path, args):
    """The engine's own fold-0 parts and model step."""
    from engine.training.context import build_context
    from engine.training.fit import build_fold_parts

    ctx = build_context(run_dir, args.device)
    start = time.perf_counter()
    ctx.open_images()  # the decoded-image cache: built once per dataset and size, reused by every fold and run
    ctx.cache_seconds = time.perf_counter() - start
    parts = build_fold_parts(ctx, 0)
    to_input = ctx.to_input()

    def step(x, y):
        x, y = to_input(x), y.to(ctx.device, non_blocking=True)
        with ctx.autocast():
            loss = parts.loss_fn(parts.model(x), y)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()

    epoch = iter(range(1, 10**6))

    def batches():
        parts.train_images.set_epoch(next(epoch))
        return parts.train_loader

    return ctx, parts, step, batches


class PlainImages(torch.utils.data.Dataset):
    """The obvious Dataset: PIL decode, albumentations incl. Resize + Normalize + ToTensorV2."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        image = np.array(Image.open(self.paths[i]).convert("RGB"))
        return self.transform(image=image)["image"], self.labels[i]


def reference_loop(ctx, args):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from engine.training.models import create_model

    table = ctx.samples[ctx.samples["fold"] != 0]
    s = ctx.image_size
    transform = A.Compose([A.from_dict(ctx.cfg.augment), A.Resize(s, s),
                           A.Normalize(mean=ctx.data_config["mean"], std=ctx.data_config["std"]), ToTensorV2()])
    loader = torch.utils.data.DataLoader(PlainImages(table["path"], table["label_index"], transform),
                                         batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         drop_last=True)
    model = create_model(ctx.cfg.model, len(ctx.classes)).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        x, y = x.to(ctx.device), y.to(ctx.device)
        with ctx.autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step, lambda: loader


def synthetic_batches(ctx, args, step_count: int = 4):
    """Normalized batches already on the device (and in the engine's memory format)."""
    to_input = ctx.to_input()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch_size, 3, ctx.image_size, ctx.image_size), dtype=torch.uint8, generator=g)
    x = to_input(x)
    y = (torch.arange(args.batch_size) % len(ctx.classes)).to(ctx.device)
    return lambda: [(x, y)] * step_count


def synthetic_step(ctx, parts):
    def step(x, y):
        with ctx.autocast():
            loss = parts.loss_fn(parts.model(x), y)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()

    return step


# ---------------------------------------------------------------- report


def measure(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        spec = jpeg_dataset(tmp / "jpeg", args.images) if args.source == "jpeg" else demo_dataset(tmp)
        run_dir = create_run(spec, tmp / "ws", args)
        ctx, parts, engine_step, engine_batches = engine_loop(run_dir, args)
        ref_step, ref_batches = reference_loop(ctx, args)
        synth_step, synth_batches = synthetic_step(ctx, parts), synthetic_batches(ctx, args)
        results = {"engine": [], "reference": [], "synthetic": []}
        for _ in range(args.repeats):
            results["engine"].append(time_batches(engine_step, engine_batches, ctx.device, args.batches))
            results["reference"].append(time_batches(ref_step, ref_batches, ctx.device, args.batches))
            results["synthetic"].append(time_batches(synth_step, synth_batches, ctx.device, args.batches))
        median = {k: statistics.median(v) for k, v in results.items()}
        return {
            "model": args.model, "image_size": ctx.image_size, "batch_size": args.batch_size, "source": args.source,
            "device": str(ctx.device), "device_name": device_name(ctx.device), "workers": args.workers,
            "precision": "bf16 autocast, channels_last" if ctx.use_autocast else "fp32",
            "images_per_second": {k: round(v, 1) for k, v in median.items()},
            "runs": {k: [round(x, 1) for x in v] for k, v in results.items()},
            "engine_vs_reference": round(median["engine"] / median["reference"], 3),
            "cache_build_seconds": round(ctx.cache_seconds, 2), "train_images": len(parts.train_images),
            "engine_efficiency": round(median["engine"] / median["synthetic"], 3),
            "reference_efficiency": round(median["reference"] / median["synthetic"], 3),
        }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def markdown_row(r: dict) -> str:
    ips = r["images_per_second"]
    return (f"| {r['model']} | {r['image_size']} | {r['batch_size']} | {r['source']} | {r['device_name']} | "
            f"{r['precision']} | {r['workers']} | {ips['engine']:.0f} | {ips['reference']:.0f} | {ips['synthetic']:.0f} | "
            f"**{r['engine_vs_reference']:.2f}x** | {r['engine_efficiency']:.2f} | {r['reference_efficiency']:.2f} |")


HEADER = ("| model | px | batch | data | device | precision | workers | engine img/s | reference img/s | "
          "synthetic img/s | engine / reference | engine efficiency | reference efficiency |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def write_docs(result: dict, docs: Path = DOCS) -> None:
    """Add the result's row to the table under the marker (replacing a row with the same settings)."""
    before, section, after = split_section(docs.read_text(encoding="utf-8"), MARKER, docs=docs)
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    key = lambda row: row.split("|")[1:8]  # noqa: E731 - model .. workers identify a setting
    new = markdown_row(result)
    rows = [row for row in rows if key(row) != key(new)] + [new]
    opening = header("each row's *device* column and the note below the table",
                     "`python bench/train_throughput.py --write-docs` (see its docstring for the GPU commands)",
                     "*reference*, PIL decode + the same albumentations pipeline + Normalize/ToTensorV2 in the "
                     "workers, the same model and autocast; *engine / reference* is the ratio. Median of alternating "
                     "repeats. Efficiency = real-data img/s / synthetic in-memory img/s.")
    body = f"\n\n{opening}\n\n{HEADER}\n" + "\n".join(rows) + "\n"
    notes = [line for line in section.splitlines() if line.startswith("> ")]
    body += ("\n" + "\n".join(notes) + "\n") if notes else ""
    docs.write_text(before + body + after, encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--source", choices=("demo", "jpeg"), default="demo")
    p.add_argument("--images", type=int, default=1024, help="JPEGs to write with --source jpeg")
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)))
    p.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--write-docs", action="store_true", help="add the row to docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args)
    print(json.dumps(result, indent=2))
    print(HEADER)
    print(markdown_row(result))
    if args.write_docs:
        write_docs(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
