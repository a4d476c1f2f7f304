"""Scale-out: one study trained by the local backend (one fold at a time) and by Ray (folds side by side).

    python bench/scale_out.py [--runs 2] [--folds 3] [--epochs 8] [--model test_resnet] [--image-size 32]
                              [--ray-cpus 2] [--device cpu] [--write-docs]

    # on a GPU host: every fold a Ray task with one GPU, Ray spreads them over every GPU
    python bench/scale_out.py --device cuda --model resnet18 --image-size 64 --epochs 3 --folds 4

The same study (``--runs`` runs differing in seed, ``--folds`` folds each, the demo digits) twice:

1. **local** - ``LocalLauncher``: one background process per run, queued on the device lock, so one
   fold trains at a time; torch uses every core (``cuda``: every GPU, one process each).
2. **local, 1 thread** (CPU only) - the same with ``OMP_NUM_THREADS=1``: what Ray's tasks get, so the
   difference to Ray is the folds side by side alone (and the predictions must be equal).
3. **ray** - ``RayLauncher`` on a private Ray cluster started here (``--ray-cpus`` CPUs, the GPUs it
   finds): every fold a task, ``num_cpus = 1`` (``train.num_workers`` 0, torch single-threaded inside)
   on CPU, ``num_gpus = 1`` on CUDA, so Ray trains ``--ray-cpus`` folds (or one per GPU) side by side.

Wall time is from the first submit to the last run done, process starts and imports included (each
backend pays its own: a process per run locally, a worker per slot on Ray); the cluster's own start
is timed apart. Every study must end ``done``; training is deterministic (``train.deterministic``), so
the single-threaded local study and Ray's reach the same mean validation accuracy. The machine's load
average is recorded before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

MARKER = "<!-- scale-out -->"
ACTIVE = ("queued", "running")


def study_config(spec: Path, args) -> dict:
    return {
        "dataset": str(spec), "model": {"name": args.model}, "image_size": args.image_size,
        "split": {"k": args.folds, "holdout_fraction": 0.1, "seed": 0},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "num_workers": 0, "scheduler": "none",
                  "deterministic": True},
        "augment": None, "tta_views": ["identity"], "device": args.device,
        "vary": {"seed": list(range(args.runs))},
    }


def train_study(config: dict, workspace: Path, launcher) -> tuple[float, list[Path]]:
    """Submit the study, wait for every run to end; (seconds, run directories)."""
    from engine.jobs import effective_status, launch_training

    start = time.perf_counter()
    runs = launch_training(config, workspace=workspace, launcher=launcher)
    while any(effective_status(r)["state"] in ACTIVE for r in runs):
        time.sleep(0.25)
    seconds = time.perf_counter() - start
    states = {r.name: effective_status(r)["state"] for r in runs}
    if set(states.values()) != {"done"}:
        raise SystemExit(f"the study did not finish: {states}")
    return seconds, runs


def mean_accuracy(runs: list[Path]) -> float:
    from engine.runs.store import best_metrics

    return sum(best_metrics(r)["val_accuracy"] for r in runs) / len(runs)


def machine(args) -> str:
    text = f"{platform.machine()}, {os.cpu_count()} cores"
    if args.device.startswith("cuda"):
        import torch

        text += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return text


def run(args) -> dict:
    from engine.data.demo import make_demo_dataset
    from engine.jobs import LocalLauncher
    from engine.jobs.ray_launcher import RayLauncher, cluster_nodes, connect, local_ray_cluster

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        tmp = Path(tmp)
        spec = make_demo_dataset(tmp / "digits-demo")
        config = study_config(spec, args)
        local_s, local_runs = train_study(config, tmp / "local", LocalLauncher(tmp / "local"))
        print(f"local: {local_s:.1f} s", flush=True)
        one_thread_s, one_thread_acc = None, None
        if not args.device.startswith("cuda"):
            os.environ["OMP_NUM_THREADS"] = "1"  # the job processes inherit it
            try:
                one_thread_s, runs = train_study(config, tmp / "local1", LocalLauncher(tmp / "local1"))
            finally:
                os.environ.pop("OMP_NUM_THREADS")
            one_thread_acc = mean_accuracy(runs)
            print(f"local, 1 thread: {one_thread_s:.1f} s", flush=True)
        started = time.perf_counter()
        with local_ray_cluster(num_cpus=args.ray_cpus) as address:
            connect(address)
            cluster_s = time.perf_counter() - started
            nodes = cluster_nodes()
            ray_s, ray_runs = train_study(config, tmp / "ray",
                                          RayLauncher(tmp / "ray", address=address, cpus_per_fold=1))
        print(f"ray: {ray_s:.1f} s (cluster start {cluster_s:.1f} s)", flush=True)
        local_acc, ray_acc = mean_accuracy(local_runs), mean_accuracy(ray_runs)
    return {"runs": args.runs, "folds": args.folds, "epochs": args.epochs, "model": args.model,
            "image_size": args.image_size, "device": args.device, "machine": machine(args),
            "ray_slots": int(sum(n["gpus"] for n in nodes)) if args.device.startswith("cuda") else args.ray_cpus,
            "local_s": local_s, "one_thread_s": one_thread_s, "ray_s": ray_s, "cluster_s": cluster_s,
            "local_acc": local_acc, "one_thread_acc": one_thread_acc, "ray_acc": ray_acc,
            "load_before": load_before, "load_after": os.getloadavg()}


HEADER = ("| study | device | machine | local | local, 1 thread | ray (folds side by side) | ray vs local | "
          "ray vs local, 1 thread | cluster start | mean val accuracy local / 1 thread / ray | "
          "load avg before -> after |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")


def markdown_row(r: dict) -> str:
    study = f"{r['runs']} runs x {r['folds']} folds, {r['model']} {r['image_size']} px, {r['epochs']} epochs"
    slots = f"{r['ray_slots']} GPU(s)" if r["device"].startswith("cuda") else f"{r['ray_slots']} CPU slots"
    one, ray_s = r.get("one_thread_s"), r["ray_s"]
    accuracy = " / ".join("-" if a is None else f"{a:.4f}" for a in (r["local_acc"], r.get("one_thread_acc"),
                                                                     r["ray_acc"]))
    return (f"| {study} | {r['device']} | {r['machine']} | {r['local_s']:.1f} s | "
            f"{'-' if one is None else f'{one:.1f} s'} | {ray_s:.1f} s ({slots}) | "
            f"**{r['local_s'] / ray_s:.2f}x** | {'-' if one is None else f'**{one / ray_s:.2f}x**'} | "
            f"{r['cluster_s']:.1f} s | {accuracy} | {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f} |")


def write_docs(result: dict, docs: Path = REPO / "docs" / "BENCHMARKS.md") -> None:
    """Add the result's row under the marker (replacing a row of the same study and device)."""
    text = docs.read_text(encoding="utf-8")
    if MARKER not in text:
        text = text.rstrip("\n") + f"\n\n## Scale-out: local backend vs Ray (`bench/scale_out.py`)\n\n{MARKER}\n"
    head, _, rest = text.partition(MARKER)
    section, sep, tail = rest.partition("\n## ")
    new = markdown_row(result)
    key = lambda row: row.split("|")[1:3]  # noqa: E731 - study and device identify a row
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| study")]
    rows = [row for row in rows if key(row) != key(new)] + [new]
    notes = [line for line in section.splitlines() if line.startswith("> ")]
    body = (f"\n\n`python bench/scale_out.py` (see its docstring). The same study three times: the local "
            f"backend (one process per run, queued on the device, so one fold at a time; torch on every core, "
            f"then single-threaded as Ray's tasks are) and Ray on a private cluster started by the script (one "
            f"task per fold, one CPU or one GPU each). Wall time from the first submit to the last run done, "
            f"process starts and imports included; the cluster's own start apart. Deterministic training: the "
            f"single-threaded local study and Ray's reach the same accuracy.\n\n{HEADER}\n" + "\n".join(rows)
            + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else ""))
    docs.write_text(head + MARKER + body + ("\n" + sep.lstrip("\n") + tail if sep else ""), encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--model", default="test_resnet")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (every fold a task with one GPU)")
    p.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the Ray cluster (= folds side by side on CPU)")
    p.add_argument("--write-docs", action="store_true", help="add the row to docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    result = run(args)
    print(HEADER)
    print(markdown_row(result))
    if args.write_docs:
        write_docs(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
