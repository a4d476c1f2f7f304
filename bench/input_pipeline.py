"""Input pipeline: the decoded-image cache against decoding every epoch, and the pipeline efficiency.

    python bench/input_pipeline.py [--images 2000] [--image-size 112] [--model test_resnet] [--batch-size 32]
                                   [--workers 2] [--loader-batches 20] [--train-batches 10] [--repeats 7]
                                   [--write-docs]

Writes ``--images`` photo-like 640x480 JPEGs (``bench/scan.py``'s generator: 60-100 KB each, they
compress like photos), then measures, with the same ``medium`` augmentation preset, the same worker
count and the same batch size everywhere:

1. **cache build**: :func:`engine.data.decoded_cache.build_decoded_cache` cold (every core), and the
   reopen of the unchanged cache a second run does;
2. **loader images/s** (the engine's ``AugmentedImages`` + ``make_loader``, uint8 batches, no model):
   from the cache; decoding every read with the same shrink (``DecodingImageSource``, what the engine
   does with ``train.data_cache: false`` - the same pixels); and decoding at full size with the
   augmentations on the 640x480 image (``FileImageSource``, the engine before the cache);
3. **pipeline efficiency**: training images/s of ``--model`` (timm, random init, AdamW, the engine's
   on-device normalization) fed by the loader, divided by the same step on uint8 tensors already on
   the device (what timm's ``benchmark.py`` measures) - with the cache and without. The default
   model is timm's ``test_resnet`` (a small ResNet of about 0.5 M weights): on a 2-core CPU it trains
   at tens of images/s, the regime where the input pipeline matters; resnet18 trains at a few
   images/s there, so any input pipeline would keep up with it.

Measurements alternate ``--repeats`` times; images/s are medians, and each ratio is the median of the
ratios within a repeat (contenders run back to back), so load that drifts during the run cancels out.
``--write-docs`` rewrites the CPU block of the ``<!-- input -->`` section of docs/BENCHMARKS.md.
The GPU counterpart is ``bench/gpu_train.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import docs_section  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scan import machine, make_images  # noqa: E402  (the scan benchmark's photo-like JPEGs)

DOCS = docs_section.DOCS
MARKER = "<!-- input -->"


# ---------------------------------------------------------------- shared with bench/gpu_train.py


def sources(paths: list[str], image_size: int, workspace: Path, workers: int | None = None) -> dict:
    """The three image sources compared, and the cold build / warm reopen seconds of the cache."""
    from engine.data.decoded_cache import DecodingImageSource, build_decoded_cache, stored_size_for
    from engine.training.data import FileImageSource

    stored = stored_size_for(image_size)
    start = time.perf_counter()
    cache = build_decoded_cache(paths, stored, workspace=workspace, workers=workers)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = build_decoded_cache(paths, stored, workspace=workspace, workers=workers)
    warm = time.perf_counter() - start
    assert again.decoded == 0, "the second build decoded images"
    return {"cache": cache, "decode": DecodingImageSource(paths, stored), "decode_full": FileImageSource(paths),
            "build_seconds": cold, "reopen_seconds": warm, "stored_size": stored, "cache_bytes": cache.nbytes}


def loader_for(source, image_size: int, *, batch_size: int, workers: int, device: torch.device, train: bool = True):
    """The engine's DataLoader over ``source``: medium preset when ``train``, resize only otherwise."""
    from engine.augment.pipeline import pipeline_from_dict
    from engine.augment.presets import preset
    from engine.training.data import AugmentedImages, make_loader

    pipeline = pipeline_from_dict(preset("medium", image_size)) if train else None
    labels = np.arange(len(source)) % 5
    data = AugmentedImages(source, labels, image_size, pipeline=pipeline, seed=0)
    loader = make_loader(data, batch_size=batch_size, shuffle=train, num_workers=workers, device=device,
                         drop_last=train)
    return data, loader


def endless(data, loader):
    """Batches forever, a new epoch (new augmentations) each time the loader runs out."""
    epoch = 0
    while True:
        epoch += 1
        data.set_epoch(epoch)
        yield from loader


def timed_batches(batches, step, n: int, device: torch.device, warmup: int = 2) -> float:
    """Images/s of ``step(x, y)`` over ``n`` batches after ``warmup`` batches."""
    images, start = 0, None
    for i in range(n + warmup):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        x, y = next(batches)
        step(x, y)
        images += len(y) if i >= warmup else 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images / (time.perf_counter() - start)


def train_step(model, device: torch.device, data_config: dict, *, autocast):
    """The engine's model step: uint8 batch -> device, normalized there (DeviceInput), forward, backward, AdamW."""
    from engine.training.data import DeviceInput

    to_input = DeviceInput(data_config, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(x, y):
        x, y = to_input(x), y.to(device, non_blocking=True)
        with autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def synthetic_batches(batch_size: int, image_size: int, device: torch.device):
    """One uint8 batch already on the device, forever: the input pipeline at zero cost."""
    x = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device=device)
    y = (torch.arange(batch_size) % 5).to(device)
    while True:
        yield x, y


def alternate(measures: dict, repeats: int, runs: dict | None = None) -> dict[str, float]:
    """Run every measure ``repeats`` times, interleaved; the median of each (every figure into ``runs``)."""
    runs = {} if runs is None else runs
    for _ in range(repeats):
        for name, fn in measures.items():
            runs.setdefault(name, []).append(round(fn(), 1))
    return {k: statistics.median(runs[k]) for k in measures}


def paired_ratio(runs: dict[str, list[float]], num: str, den: str) -> float:
    """Median over repeats of ``num / den`` measured side by side: robust to load that drifts between repeats."""
    return statistics.median(a / b for a, b in zip(runs[num], runs[den], strict=True))


def write_block(name: str, body: str, docs: Path = DOCS) -> None:
    """Replace the block ``<!-- input:name -->`` .. ``<!-- /input:name -->`` of the input section (added if absent)."""
    docs_section.write_block(MARKER, f"input:{name}", body, docs=docs)


# ---------------------------------------------------------------- the CPU measurement


def measure(args, folder: Path) -> dict:
    import timm

    from engine.training.models import resolve_data_config

    device = torch.device("cpu")
    # A model trained over and over on random labels drifts into denormal floats, which x86 cores
    # compute tens of times slower: without this, every measurement is slower than the one before.
    torch.set_flush_denormal(True)
    paths = make_images(folder / "images", args.images)
    src = sources(paths, args.image_size, folder / "workspace")
    loaders = {name: loader_for(src[name], args.image_size, batch_size=args.batch_size, workers=args.workers,
                                device=device) for name in ("cache", "decode", "decode_full")}
    streams = {name: endless(*dl) for name, dl in loaders.items()}
    def delivered(name):
        return lambda: timed_batches(streams[name], lambda x, y: None, args.loader_batches, device)

    loader_runs, train_runs = {}, {}
    loader_rates = alternate({name: delivered(name) for name in streams}, args.repeats, loader_runs)

    model = timm.create_model(args.model, num_classes=5)
    data_config = resolve_data_config(model, args.image_size)
    step = train_step(model, device, data_config, autocast=contextlib.nullcontext)  # fp32 on a CPU
    synthetic = synthetic_batches(args.batch_size, args.image_size, device)
    train_rates = alternate({
        "synthetic": lambda: timed_batches(synthetic, step, args.train_batches, device),
        "cache": lambda: timed_batches(streams["cache"], step, args.train_batches, device),
        "decode": lambda: timed_batches(streams["decode"], step, args.train_batches, device),
    }, args.repeats, train_runs)
    return {
        "machine": machine(), "torch_threads": torch.get_num_threads(), "images": len(paths),
        "image_size": args.image_size, "stored_size": src["stored_size"], "batch_size": args.batch_size,
        "workers": args.workers, "model": args.model, "repeats": args.repeats,
        "cache_build_images_per_s": round(len(paths) / src["build_seconds"], 1),
        "cache_reopen_seconds": round(src["reopen_seconds"], 3), "cache_mb": round(src["cache_bytes"] / 1e6, 1),
        "loader_images_per_s": {k: round(v, 1) for k, v in loader_rates.items()},
        "train_images_per_s": {k: round(v, 1) for k, v in train_rates.items()},
        "cache_vs_decode": round(paired_ratio(loader_runs, "cache", "decode"), 2),
        "full_vs_decode": round(paired_ratio(loader_runs, "decode_full", "decode"), 2),
        "efficiency_cache": round(paired_ratio(train_runs, "cache", "synthetic"), 3),
        "efficiency_decode": round(paired_ratio(train_runs, "decode", "synthetic"), 3),
        "runs": {"loader": loader_runs, "train": train_runs},
    }


def markdown(r: dict) -> str:
    ld, tr = r["loader_images_per_s"], r["train_images_per_s"]
    opening = docs_section.header(
        f"{r['machine']}; torch threads {r['torch_threads']}", "`python bench/input_pipeline.py --write-docs`",
        "the loader decoding each epoch (`data_cache: false`, the same shrink, the same pixels); for training,\n"
        "synthetic uint8 tensors already on the device (the pipeline's ceiling).")
    return f"""### CPU

{opening}

{r['images']:,} photo-like 640x480 JPEGs,
`medium` augmentation preset at {r['image_size']} px, batch {r['batch_size']}, {r['workers']} DataLoader workers
everywhere; cache stored at shorter side {r['stored_size']} px ({r['cache_mb']:,.0f} MB).

| input pipeline (loader only, no model) | images/s | vs decoding each epoch |
|---|---|---|
| decoded-image cache | {ld['cache']:,.0f} | **{r['cache_vs_decode']:.2f}x** |
| decoding each epoch, same shrink (`data_cache: false`, same pixels) | {ld['decode']:,.0f} | 1.00x |
| decoding each epoch at full size (the engine before the cache) | {ld['decode_full']:,.0f} | {r['full_vs_decode']:.2f}x |

Cache build (every core, once per dataset and size): {r['cache_build_images_per_s']:,.0f} images/s; reopening
the unchanged cache (a second run): {r['cache_reopen_seconds']:.2f} s, no image decoded.

| training {r['model']} at {r['image_size']} px, fp32 | images/s | pipeline efficiency (vs synthetic) |
|---|---|---|
| synthetic uint8 tensors already on the device | {tr['synthetic']:,.1f} | 1.00 |
| real data from the decoded-image cache | {tr['cache']:,.1f} | **{r['efficiency_cache']:.2f}** |
| real data decoded each epoch | {tr['decode']:,.1f} | {r['efficiency_decode']:.2f} |

Images/s: medians of {r['repeats']} interleaved repeats; ratios: medians of the ratios within each
repeat (the contenders run back to back, so load that drifts between repeats cancels out). Every
repeat (images/s): loader {r['runs']['loader']}; training {r['runs']['train']}.

On this CPU the loader's workers and the model share the same two cores, so every image the
workers decode is time taken from the model: the cache's gain is what the model gets back. What
stays below 1.0 with the cache is the augmentation itself (albumentations in the workers), which no
cache can skip; on a GPU host the workers have cores of their own."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--model", default="test_resnet", help="timm model for the efficiency (random init)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for every contender")
    p.add_argument("--loader-batches", type=int, default=20, help="timed loader batches per measurement")
    p.add_argument("--train-batches", type=int, default=10, help="timed training batches per measurement")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=None, help="folder for the images and the cache (default: a temporary one)")
    p.add_argument("--write-docs", action="store_true", help="rewrite the CPU block of docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="input-bench-"))
    try:
        result = measure(args, folder)
    finally:
        if not args.out:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(markdown(result))
    if args.write_docs:
        write_block("cpu", markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
