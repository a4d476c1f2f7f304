"""GPU training throughput per model: real data through the engine vs synthetic input, share of the peak, TTA.

    python bench/gpu_train.py [--models resnet50 convnext_tiny efficientnet_b0] [--image-size 224]
                              [--batch-size 256] [--images 8192] [--workers N] [--batches 30] [--repeats 3]
                              [--views identity hflip] [--peak-tflops F] [--compile] [--write-docs]

Needs a CUDA device: without one it prints "no CUDA device" and exits with status 2. On an H100 or
H200 the whole default run takes a few minutes (plus a few minutes per model with ``--compile``).

For each model (timm, random init, 5 classes), bf16 autocast and channels_last, AdamW:

- **synthetic**: the engine's step (uint8 batch -> on-device normalization -> forward/backward/step)
  on one uint8 batch already on the GPU: the model's own speed (what timm's ``benchmark.py`` measures);
- **real**: the same step fed by the engine's input pipeline - ``--images`` photo-like 640x480 JPEGs
  (``bench/scan.py``'s generator) in the decoded-image cache, the ``medium`` augmentation preset in
  ``--workers`` DataLoader workers, pinned memory, non-blocking copies;
- **efficiency** = real / synthetic; **share of peak** = real images/s x training FLOPs per image
  (forward + backward, counted by ``torch.utils.flop_counter``) / the GPU's dense bf16 peak (assumed:
  H100 SXM / H200 989 TFLOPS, H100 NVL 835, H100 PCIe 756, A100 312; ``--peak-tflops`` overrides);
- **TTA prediction**: ``engine.training.loop.collect_logits`` over the cached images with ``--views``
  (inference_mode, bf16), in images/s (each image predicted once per view).

Also measured once: the input pipeline alone (loader images/s, no model) from the cache vs decoding
every epoch, with the same workers. ``--write-docs`` rewrites the GPU block of the ``<!-- input -->``
section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from input_pipeline import (  # noqa: E402  (also puts the repository on sys.path)
    alternate,
    endless,
    loader_for,
    paired_ratio,
    sources,
    synthetic_batches,
    timed_batches,
    train_step,
    write_block,
)
from scan import machine, make_images  # noqa: E402

COMMAND = "python bench/gpu_train.py --write-docs"
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0))


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def bf16(device: torch.device):
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_flops_per_image(model, image_size: int, device: torch.device) -> float:
    """Forward + backward FLOPs of one image (batch of 2 in train mode, halved)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, image_size, image_size, device=device).contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter, bf16(device)():
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def tta_images_per_second(model, cache, args, device: torch.device, data_config: dict) -> float:
    """Images/s of collect_logits (every view of every image) over up to ``batches`` eval batches."""
    import time

    from engine.training.data import DeviceInput
    from engine.training.loop import collect_logits

    batch = args.batch_size * 2
    n = min(len(cache), batch * args.batches)
    to_input = DeviceInput(data_config, device)
    autocast = bf16(device)
    _, warm = loader_for(cache.select(range(batch * 2)), args.image_size, batch_size=batch, workers=args.workers,
                         device=device, train=False)
    collect_logits(model, warm, to_input, views=args.views, autocast=autocast)
    _, loader = loader_for(cache.select(range(n)), args.image_size, batch_size=batch, workers=args.workers,
                           device=device, train=False)
    iter(loader)  # start the workers outside the timing
    sync(device)
    start = time.perf_counter()
    collect_logits(model, loader, to_input, views=args.views, autocast=autocast)
    sync(device)
    return n / (time.perf_counter() - start)


def measure_model(name: str, stream, cache, args, device: torch.device, peak: float | None) -> dict:
    import timm

    from engine.training.fastpath import compile_model
    from engine.training.models import resolve_data_config

    model = timm.create_model(name, num_classes=5).to(device).to(memory_format=torch.channels_last)
    data_config = resolve_data_config(model, args.image_size)
    flops = training_flops_per_image(model, args.image_size, device)
    if args.compile:
        compile_model(model)
    step = train_step(model, device, data_config, autocast=bf16(device))
    synthetic = synthetic_batches(args.batch_size, args.image_size, device)
    runs: dict[str, list[float]] = {}
    rates = alternate({
        "synthetic": lambda: timed_batches(synthetic, step, args.batches, device, warmup=5),
        "real": lambda: timed_batches(stream, step, args.batches, device, warmup=5),
    }, args.repeats, runs)
    tta = tta_images_per_second(model, cache, args, device, data_config)
    share = rates["real"] * flops / (peak * 1e12) if peak else None
    return {"model": name, "gflops_per_image_train": round(flops / 1e9, 2),
            "synthetic_images_per_s": round(rates["synthetic"], 1), "real_images_per_s": round(rates["real"], 1),
            "efficiency": round(paired_ratio(runs, "real", "synthetic"), 3),
            "share_of_peak": None if share is None else round(share, 3),
            "tta_images_per_s": round(tta, 1), "compiled": bool(args.compile)}


def markdown(r: dict) -> str:
    def share(m: dict) -> str:
        return "n/a" if m["share_of_peak"] is None else f"{100 * m['share_of_peak']:.0f}%"

    rows = "\n".join(
        f"| {m['model']} | {m['synthetic_images_per_s']:,.0f} | {m['real_images_per_s']:,.0f} | **{m['efficiency']:.2f}** | "
        f"{m['gflops_per_image_train']:.1f} | {share(m)} | {m['tta_images_per_s']:,.0f} |" for m in r["models"])
    ld = r["loader_images_per_s"]
    peak = f"{r['peak_tflops']:.0f} TFLOPS dense bf16" if r["peak_tflops"] else "unknown (give --peak-tflops)"
    return f"""### GPU (`{COMMAND}`)

{r['device']}; host: {r['machine']}. {r['images']:,} photo-like 640x480 JPEGs in the decoded-image cache
(shorter side {r['stored_size']} px), `medium` preset at {r['image_size']} px, batch {r['batch_size']},
{r['workers']} DataLoader workers, bf16 autocast, channels_last{', torch.compile' if r['compiled'] else ''}.
Peak assumed: {peak}. TTA views: {', '.join(r['views'])}.

| model | synthetic img/s | real data img/s | efficiency | train GFLOPs/img | share of peak | TTA predict img/s |
|---|---|---|---|---|---|---|
{rows}

Input pipeline alone (no model): cache {ld['cache']:,.0f} img/s vs decoding each epoch {ld['decode']:,.0f} img/s
(**{r['cache_vs_decode']:.1f}x**, median of the per-repeat ratios)."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny", "efficientnet_b0"])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--images", type=int, default=8192)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--views", nargs="+", default=["identity", "hflip"])
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not known here")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (adds minutes per model)")
    p.add_argument("--out", default=None, help="folder for the images and the cache (default: a temporary one)")
    p.add_argument("--write-docs", action="store_true", help="rewrite the GPU block of docs/BENCHMARKS.md")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="without CUDA, run the script on the CPU anyway (checks it works; the figures mean nothing)")
    args = p.parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    elif args.cpu_smoke:
        device, args.write_docs = torch.device("cpu"), False
    else:
        print(f"bench/gpu_train.py: no CUDA device on this machine (torch {torch.__version__}, "
              f"torch.cuda.is_available() is False). Run `{COMMAND}` on a machine with an NVIDIA GPU.")
        return 2
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    try:
        paths = make_images(folder / "images", args.images)
        src = sources(paths, args.image_size, folder / "workspace")
        streams = {k: endless(*loader_for(src[k], args.image_size, batch_size=args.batch_size, workers=args.workers,
                                          device=device)) for k in ("cache", "decode")}
        loader_runs: dict[str, list[float]] = {}
        loader_rates = alternate({k: (lambda k=k: timed_batches(streams[k], lambda x, y: None, args.batches, device))
                                  for k in streams}, args.repeats, loader_runs)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
        peak = peak_tflops(name, args.peak_tflops)
        models = [measure_model(m, streams["cache"], src["cache"], args, device, peak) for m in args.models]
    finally:
        if not args.out:
            shutil.rmtree(folder, ignore_errors=True)
    result = {"device": name, "machine": machine(), "images": len(paths), "image_size": args.image_size,
              "stored_size": src["stored_size"], "batch_size": args.batch_size, "workers": args.workers,
              "views": args.views, "compiled": bool(args.compile), "peak_tflops": peak,
              "loader_images_per_s": {k: round(v, 1) for k, v in loader_rates.items()},
              "cache_vs_decode": round(paired_ratio(loader_runs, "cache", "decode"), 2), "models": models}
    print(json.dumps(result, indent=2))
    print(markdown(result))
    if args.write_docs:
        write_block("gpu", markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
