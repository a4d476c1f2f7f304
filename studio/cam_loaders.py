"""What the Grad-CAM page reads: which fold models can be explained, the models (cached), the images to
explain and their CAMs (cached), and uploaded images.

Models are ``st.cache_resource`` entries keyed by (run directory, fold, weights-file mtime, device) —
shared read-only by every session (engine.explain guards them while a CAM runs). CAMs and sample
tables are ``st.cache_data`` keyed by small tokens.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine import runs as store
from engine.data import load_rgb
from engine.errors import DatasetError, RunError
from engine.explain import CamResult, TargetLayer, compute_cams, list_target_layers, select_samples
from studio.loaders import load_dataset_cached, mtime

MAX_CACHED_MODELS = 6


@dataclass(frozen=True)
class FoldModel:
    """One explainable model: a finished fold of a run."""

    run_dir: str
    run_name: str
    fold: int

    @property
    def label(self) -> str:
        return f"{self.run_name} · fold {self.fold}"


@dataclass
class ModelChoices:
    """The fold models on offer, and what a person should know about the runs that offer fewer."""

    models: list[FoldModel] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level: info | warning | error, message)
    runs: int = 0


def model_choices(workspace: str | Path) -> ModelChoices:
    """Every finished fold with a weights file, newest run first, plus a note for each run that is still
    training, failed, was cancelled, or lost a weights file."""
    records = store.list_run_records(workspace)  # a dead training process shows as failed
    choices = ModelChoices(runs=len(records))
    for record in records:
        run_dir, name = record.path, record.name
        if record.damaged:
            choices.notes.append(("warning", f"Run **{name}** is left out: {record.damage}"))
            continue
        status = record.status
        folds = record.fold_states
        done = []
        for key in sorted(folds, key=int):
            if (folds[key] or {}).get("state") != "done":
                continue
            weights = store.weights_path(run_dir, int(key))
            if int(key) in record.weights:
                done.append(int(key))
            else:
                choices.notes.append(("error", f"Run **{name}**, fold {key}: the weights file `{weights}` is missing, "
                                               "so this fold cannot be explained. Resume the run on the Train page "
                                               "to train the fold again."))
        choices.models += [FoldModel(str(run_dir), name, k) for k in done]
        state = status.get("state")
        finished = f"{len(done)} of {len(folds)} folds finished" + (", listed below" if done else "")
        if state in ("queued", "running"):
            choices.notes.append(("info", f"Run **{name}** is still training ({finished}); its other folds appear "
                                          "here when they finish."))
        elif state in ("failed", "cancelled"):
            error = str(status.get("error") or "").rstrip(".")
            why = f": {error}" if state == "failed" and error else ""
            resume = "" if "resume" in error.lower() else " Resume it on the Train page to finish the other folds."
            choices.notes.append(("warning", f"Run **{name}** {state} ({finished}){why}.{resume}"))
    return choices


def device_name() -> str:
    """Where CAMs run: the first GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@st.cache_resource(max_entries=MAX_CACHED_MODELS, show_spinner="Loading the fold model...")
def _fold_model(run_dir: str, fold: int, weights_mtime: float, device: str):
    from engine.training.models import load_fold_model

    return load_fold_model(run_dir, fold, device=device)


def fold_model(entry: FoldModel):
    """``(model, info)`` of a fold (info: config, classes, data_config, fold); reloaded when its weights
    file changes. Shared between sessions: never mutate the model."""
    weights = store.weights_path(entry.run_dir, entry.fold)
    if not weights.is_file():
        raise RunError(f"Fold {entry.fold} of run {entry.run_name!r} has no weights file (`{weights}`).")
    return _fold_model(entry.run_dir, entry.fold, mtime(weights), device_name())


def subsets_of(entry: FoldModel) -> list[str]:
    """The labelled prediction subsets a run has, holdout first (no fold model trained on those images)."""
    return [s for s in ("holdout", "oof") if s in store.expected_subsets(entry.run_dir)]


@st.cache_data(max_entries=32, show_spinner=False)
def _labelled_predictions(run_dir: str, fold: int, subset: str, file_mtime: float) -> pd.DataFrame:
    frame = store.read_predictions(run_dir, subset, folds=[fold])
    if frame.empty:
        return frame
    views = list(dict.fromkeys(frame["view"]))
    view = "identity" if "identity" in views else views[0]  # the CAM explains the plain image
    return frame[frame["view"] == view].reset_index(drop=True)


def pick_samples(entry: FoldModel, subset: str, source: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Samples to explain, chosen by ``entry``'s own predictions on ``subset`` (engine.explain.select_samples):
    ``sample_id``, ``path``, ``label_index``, in display order. Empty when nothing qualifies."""
    frame = _labelled_predictions(entry.run_dir, entry.fold, subset,
                                  mtime(store.predictions_path(entry.run_dir, entry.fold, subset)))
    columns = ["sample_id", "path", "label_index"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    logits = frame[[c for c in frame.columns if c.startswith("logit_")]].to_numpy()
    chosen = frame.iloc[select_samples(logits, frame["label_index"].to_numpy(), source=source, n=n, seed=seed)]
    paths = run_manifest(entry.run_dir).set_index("sample_id")["path"]
    chosen = chosen[chosen["sample_id"].astype(str).isin(paths.index)]
    return pd.DataFrame({"sample_id": chosen["sample_id"].astype(str).to_numpy(),
                         "path": paths.loc[chosen["sample_id"].astype(str)].to_numpy(),
                         "label_index": chosen["label_index"].to_numpy()}, columns=columns)


def run_manifest(run_dir: str) -> pd.DataFrame:
    """The manifest of the dataset a run was trained on (its config's ``dataset``)."""
    return load_dataset_cached(store.read_run(run_dir).dataset).manifest


def decode_upload(data: bytes, name: str) -> np.ndarray:
    """An uploaded file as RGB uint8 (H, W, 3), decoded like every dataset image (engine.load_rgb)."""
    try:
        return load_rgb(io.BytesIO(data))
    except DatasetError:
        raise DatasetError(f"The uploaded file {name!r} is not an image the studio can read "
                           "(PNG, JPEG, BMP, GIF, TIFF or WebP).") from None


def images_token(paths: list[str] | None = None, upload: bytes | None = None) -> tuple:
    """A small hashable stand-in for a list of images: their paths and mtimes, or the upload's digest."""
    if upload is not None:
        return ("upload", hashlib.sha1(upload).hexdigest())
    return tuple((p, mtime(Path(p))) for p in paths or [])


def load_images(paths: list[str]) -> list[np.ndarray]:
    return [load_rgb(p) for p in paths]


@st.cache_data(max_entries=64, show_spinner=False)
def _cams(run_dir: str, fold: int, weights_mtime: float, token: tuple, _images: list[np.ndarray], method: str,
          targets: int | tuple[int, ...] | None, layer: str | None) -> CamResult:
    from engine.training.data import run_prediction_input

    model, info = _fold_model(run_dir, fold, weights_mtime, device_name())
    prepared_like_prediction = run_prediction_input(info["config"], info["data_config"])
    return compute_cams(model, _images, data_config=prepared_like_prediction, method=method,
                        targets=list(targets) if isinstance(targets, tuple) else targets, layer=layer)


def explain(entry: FoldModel, images: list[np.ndarray], token: tuple, *, method: str,
            targets: int | tuple[int, ...] | None, layer: str | None) -> CamResult:
    """CAMs of ``images`` (identified by ``token``) for one fold model; cached per (model, images, settings)."""
    fold_model(entry)  # loads (and raises RunError for a missing weights file) before the cached call
    weights = store.weights_path(entry.run_dir, entry.fold)
    return _cams(entry.run_dir, entry.fold, mtime(weights), token, images, method, targets, layer)


@st.cache_data(max_entries=32, show_spinner=False)
def _layers(run_dir: str, fold: int, weights_mtime: float) -> list[TargetLayer]:
    model, info = _fold_model(run_dir, fold, weights_mtime, device_name())
    return list_target_layers(model, info["data_config"]["input_size"])


def target_layers(entry: FoldModel) -> list[TargetLayer]:
    """The layers a CAM can read in this fold model, shallow to deep."""
    fold_model(entry)
    return _layers(entry.run_dir, entry.fold, mtime(store.weights_path(entry.run_dir, entry.fold)))
