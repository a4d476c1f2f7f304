"""Shared, seeded fixtures: the demo dataset (built once per test run) and a private workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # the tests never reach the network, whatever the caller's environment says
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# The tests' Ray cluster lives on 127.0.0.1 alone (engine.jobs.ray_launcher.LOOPBACK_ENV), in every process.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_workspace(tmp_path_factory) -> Path:
    """A workspace shared by the whole test run (runs trained once, caches)."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def demo_spec_path(tmp_path_factory) -> Path:
    """The demo dataset written once per test run; returns its dataset.yaml. Treat it as read-only."""
    from engine.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("data") / "digits-demo")


@pytest.fixture(scope="session")
def demo_dataset(demo_spec_path):
    from engine.data import open_dataset

    return open_dataset(demo_spec_path)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh workspace for one test, also exported as $FOLD_STUDIO_WORKSPACE."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
    return ws


# ---------------------------------------------------------------- training: one tiny study per test run


TINY_STUDY_MODEL = "test_resnet"


@pytest.fixture(scope="session")
def tiny_study(session_workspace, demo_spec_path):
    """Two runs trained once per test run (in-process, CPU) that differ only in label smoothing (0.0 vs 0.1).

    timm's ``test_resnet`` at 32 px, k=2 folds, a 20% holdout, TTA views identity + hflip, 2 epochs.
    Returns a SimpleNamespace with ``workspace``, ``run_dirs`` (list[Path], smoothing 0.0 then 0.1),
    ``study_id``. Treat the runs as read-only.
    """
    from types import SimpleNamespace

    from engine.runs.store import read_status
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    configs = load_run_configs({**tiny_config("tiny", demo_spec_path), "vary": {"train.label_smoothing": [0.0, 0.1]}})
    run_dirs = create_runs(configs, workspace=session_workspace)
    train_tiny(run_dirs)
    return SimpleNamespace(workspace=session_workspace, run_dirs=run_dirs,
                           study_id=read_status(run_dirs[0])["study_id"])


def tiny_config(name: str, spec_path) -> dict:
    """The tiny runs' config: timm's test_resnet at 32 px, k=2 folds, a 20% holdout, 2 epochs on the CPU."""
    return {"name": name, "dataset": str(spec_path), "model": {"name": TINY_STUDY_MODEL}, "image_size": 32,
            "split": {"k": 2, "seed": 0, "holdout_fraction": 0.2}, "tta_views": ["identity", "hflip"], "device": "cpu",
            "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "num_workers": 0}}


def train_tiny(run_dirs) -> None:
    """Train runs in this process on one thread (a tiny model: more threads only add OpenMP spin-waits on a busy
    2-core runner)."""
    import torch

    from engine.training.fit import train_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run_dir in run_dirs:
            train_run(run_dir, device="cpu")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def review_study(tmp_path_factory, demo_spec_path):
    """Label review on the demo dataset with 10% of its labels flipped (seeded), trained once per test run.

    ``plain``: a tiny run (see :func:`tiny_config`) on the noisy copy; then the first flagged images get decisions
    (``decisions``: sample id -> (action, label)) in the copy's overrides file, and ``with_overrides`` is the same
    config trained again with them. Tests that change the overrides file restore it (``restore_overrides``).
    """
    from types import SimpleNamespace

    from engine.analysis.label_issues import label_issues
    from engine.data.noise import inject_label_noise
    from engine.data.overrides import set_override
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    workspace = tmp_path_factory.mktemp("review-workspace")
    noisy = inject_label_noise(demo_spec_path, tmp_path_factory.mktemp("review-data") / "digits-noisy",
                               fraction=0.1, seed=0)
    (plain,) = create_runs(load_run_configs(tiny_config("noisy", noisy.spec_path)), workspace=workspace)
    train_tiny([plain])
    flagged = label_issues(plain).flagged()
    decisions = {}
    for row, action in zip(flagged.head(3).itertuples(), ("exclude", "exclude", "relabel"), strict=False):
        label = row.suggested if action == "relabel" else None
        set_override(noisy.spec_path, row.sample_id, action, label=label, given_label=row.given)
        decisions[row.sample_id] = (action, label)
    (with_overrides,) = create_runs(load_run_configs(tiny_config("noisy +overrides", noisy.spec_path)),
                                    workspace=workspace)
    train_tiny([with_overrides])
    return SimpleNamespace(workspace=workspace, spec_path=noisy.spec_path, flipped=noisy.flipped, plain=plain,
                           with_overrides=with_overrides, decisions=decisions)


@pytest.fixture
def restore_overrides(review_study):
    """Put the review study's overrides file back as it was after the test (the test may decide more)."""
    from engine.data.overrides import overrides_path

    path = overrides_path(review_study.spec_path)
    saved = path.read_bytes()
    yield path
    path.write_bytes(saved)


# ---------------------------------------------------------------- pretrained weights: a real Hugging Face cache


HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"  # the commit folder of the entries written below


def write_hub_entry(cache: Path, model_name: str, *, seed: int = 0):
    """Write ``model_name``'s weights (timm init with ``seed``, 1000 classes as published) into the hub cache
    layout for timm's ``hf_hub_id``: blobs/<sha256>, snapshots/<rev>/model.safetensors -> blob, refs/main.

    Returns (the snapshot file, the model those weights came from, in eval mode).
    """
    import hashlib

    import timm
    import torch
    from safetensors.torch import save_file

    repo_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id.partition("@")[0]
    torch.manual_seed(seed)
    model = timm.create_model(model_name, pretrained=False).eval()
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    tmp = folder / "blobs" / "incoming"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.rename(folder / "blobs" / sha)
    snapshot = folder / "snapshots" / HUB_REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "model.safetensors").symlink_to(Path("..") / ".." / "blobs" / sha)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(HUB_REVISION)
    return snapshot / "model.safetensors", model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache exported as $HF_HUB_CACHE: ``.root`` its folder, ``.add(model_name,
    seed=0)`` writes an entry (:func:`write_hub_entry`) and returns (snapshot file, source model)."""
    from types import SimpleNamespace

    cache = tmp_path / "hf-hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return SimpleNamespace(root=cache, add=lambda name, seed=0: write_hub_entry(cache, name, seed=seed))


# ---------------------------------------------------------------- search / augmentation: a smaller dataset, a study


@pytest.fixture(scope="session")
def mini_spec_path(tmp_path_factory, demo_spec_path) -> Path:
    """20 images per class of the demo dataset (200 in all, 32 px), no test set: for tests that train many runs."""
    import shutil

    import pandas as pd
    import yaml

    demo = demo_spec_path.parent
    out = tmp_path_factory.mktemp("data") / "digits-mini"
    rows = pd.read_csv(demo / "train.csv").groupby("label", sort=True).head(20)
    for image in rows["image"]:
        (out / "train" / image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo / "train" / image, out / "train" / image)
    rows.to_csv(out / "train.csv", index=False)
    spec = {"format_version": 1, "name": "digits-mini", "layout": "csv",
            "train": {"images": "train", "csv": "train.csv", "path_column": "image", "label_column": "label"}}
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out / "dataset.yaml"


@pytest.fixture(scope="session")
def augment_study(tmp_path_factory, mini_spec_path):
    """Two runs trained once per test run (in-process, CPU) that differ only in augmentation: presets 'none' and
    'medium' (``vary: {augment: [none, medium]}``), test_resnet at 32 px, k=2, 20% holdout, 3 epochs.
    Returns a SimpleNamespace with ``workspace``, ``run_dirs`` (none, then medium). Treat the runs as read-only."""
    from types import SimpleNamespace

    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    workspace = tmp_path_factory.mktemp("augment-workspace")
    configs = load_run_configs({
        "name": "aug", "dataset": str(mini_spec_path), "model": {"name": TINY_STUDY_MODEL}, "image_size": 32,
        "split": {"k": 2, "seed": 0, "holdout_fraction": 0.2}, "tta_views": ["identity", "hflip"], "device": "cpu",
        "train": {"epochs": 3, "batch_size": 8, "lr": 1e-2, "weight_decay": 0.0, "num_workers": 0},
        "vary": {"augment": ["none", "medium"]},
    })
    run_dirs = create_runs(configs, workspace=workspace)
    train_tiny(run_dirs)
    return SimpleNamespace(workspace=workspace, run_dirs=run_dirs)


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory, mini_spec_path):
    """A real Optuna search run once per test run: 2 trials (learning rate x augmentation preset) on the mini
    dataset, each a run trained by a local job process (test_resnet, 32 px, k=2, 1 epoch). Returns a
    SimpleNamespace with ``workspace`` and ``path`` (the search directory). Treat it as read-only."""
    from types import SimpleNamespace

    from engine.search import create_search, run_search

    workspace = tmp_path_factory.mktemp("search-workspace")
    config = {"dataset": str(mini_spec_path), "model": {"name": TINY_STUDY_MODEL}, "image_size": 32, "device": "cpu",
              "split": {"k": 2, "seed": 0, "holdout_fraction": 0.2}, "tta_views": ["identity"],
              "train": {"epochs": 1, "batch_size": 16, "num_workers": 0},
              "search": {"name": "tiny search", "trials": 2, "metric": "accuracy", "seed": 3,
                         "params": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "augment": ["none", "light"]}}}
    path = create_search(config, workspace=workspace)
    # The job processes inherit it: two OpenMP threads per tiny model crawl on a busy 2-core runner.
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        state = run_search(path, poll_s=0.2)
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    assert state == "done", (path / "status.json").read_text()
    return SimpleNamespace(workspace=workspace, path=path)


# ---------------------------------------------------------------- Ray: one local cluster per test run


@pytest.fixture(scope="session")
def ray_cluster():
    """A private Ray cluster (head only, 2 CPUs, its own ports and temp dir) started on first use and
    stopped at the end of the test run; yields its address. $RAY_ADDRESS points at it meanwhile, so
    nothing in the tests can wander off to another cluster on the machine."""
    from engine.jobs.ray_launcher import connect, local_ray_cluster

    before = os.environ.get("RAY_ADDRESS")
    with local_ray_cluster(num_cpus=2) as address:
        os.environ["RAY_ADDRESS"] = address
        try:
            connect(address)
            yield address
        finally:
            os.environ.pop("RAY_ADDRESS", None)
            if before is not None:
                os.environ["RAY_ADDRESS"] = before
