"""Detect the layout of a plain dataset folder and describe it as a :class:`DatasetSpec`.

Rules, tried in order:

1. A CSV (``train.csv`` first, else the only CSV that is not a sample submission) with a column whose
   values name existing image files, and a label column (``label``, ``target``, ``class``, ... or the
   only other text-like column) -> ``csv`` layout. A column named like ``patient_id`` / ``group`` /
   ``subject`` becomes the group column.
2. A ``train/`` sub-folder holding class sub-folders -> ``folder`` layout over ``train/``.
3. The folder itself holds class sub-folders -> ``folder`` layout over ``.``.

A ``test/`` (or ``test_images/``) folder becomes the test images, and ``sample_submission.csv``
the template (first column the id, second the target).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from engine.data.images import is_image_path
from engine.data.spec import DatasetSpec, SubmissionSpec, TestSpec, TrainSpec
from engine.errors import DatasetError

LABEL_NAMES = ("label", "labels", "target", "class", "class_name", "category", "y", "diagnosis")
GROUP_NAMES = ("group", "group_id", "patient_id", "patient", "subject", "subject_id", "person_id", "user_id", "case_id")
IMAGE_DIR_CANDIDATES = (".", "train", "train_images", "images", "imgs")
TEST_DIR_NAMES = ("test", "test_images", "test_imgs")


def _has_class_subfolders(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    for d in folder.iterdir():
        if d.is_dir() and not d.name.startswith(".") and d.name not in TEST_DIR_NAMES:
            if any(is_image_path(f) for f in d.iterdir() if f.is_file()):
                return True
    return False


def _find_csv(folder: Path) -> Path | None:
    csvs = sorted(p for p in folder.glob("*.csv") if "submission" not in p.name.lower())
    if (folder / "train.csv").is_file():
        return folder / "train.csv"
    if len(csvs) == 1:
        return csvs[0]
    labelled = [p for p in csvs if p.stem.lower().startswith("train") or "label" in p.stem.lower()]
    return labelled[0] if len(labelled) == 1 else None


def _detect_csv_columns(csv: Path, folder: Path) -> dict | None:
    try:
        frame = pd.read_csv(csv, dtype=str, nrows=200, encoding_errors="replace")
    except Exception:
        return None
    for images in IMAGE_DIR_CANDIDATES:
        base = folder / images
        for col in frame.columns:
            vals = frame[col].dropna().astype(str).head(20)
            if vals.empty or not any(is_image_path(v) for v in vals):
                # Ids without extension: try common extensions once.
                continue
            hits = sum((base / v).is_file() for v in vals)
            if hits >= max(1, len(vals) // 2):
                lower = {c.lower(): c for c in frame.columns}
                label = next((lower[n] for n in LABEL_NAMES if n in lower), None)
                if label is None:
                    others = [c for c in frame.columns if c != col]
                    if len(others) == 1:
                        label = others[0]
                if label is None:
                    return None
                group = next((lower[n] for n in GROUP_NAMES if n in lower), None)
                return {"images": images, "path_column": col, "label_column": label, "group_column": group}
    return None


def detect_spec(folder: str | Path) -> DatasetSpec:
    """Describe a folder as a dataset spec, or raise :class:`DatasetError` saying what was expected."""
    folder = Path(folder)
    name = folder.resolve().name or "dataset"
    test = next((TestSpec(images=d) for d in TEST_DIR_NAMES if (folder / d).is_dir()), None)
    submission = None
    sub_csv = next(iter(sorted(folder.glob("*submission*.csv"))), None)
    if sub_csv is not None:
        try:
            cols = list(pd.read_csv(sub_csv, nrows=1).columns)
        except Exception:
            cols = []
        if len(cols) >= 2:
            submission = SubmissionSpec(csv=sub_csv.name, id_column=str(cols[0]), target_column=str(cols[1]))
    csv = _find_csv(folder)
    if csv is not None:
        cols = _detect_csv_columns(csv, folder)
        if cols is not None:
            train = TrainSpec(csv=csv.name, **cols)
            return DatasetSpec(name=name, layout="csv", train=train, test=test, sample_submission=submission)
    for images in ("train", "train_images", "."):
        if _has_class_subfolders(folder / images):
            return DatasetSpec(name=name, layout="folder", train=TrainSpec(images=images), test=test,
                               sample_submission=submission)
    entries = sorted(os.listdir(folder))[:10]
    raise DatasetError(
        f"Cannot tell the layout of folder {str(folder)!r} (it holds {entries}{'...' if len(entries) == 10 else ''}). "
        "Expected one sub-folder of images per class (optionally under train/), or a train.csv with an "
        "image-path column and a label column. Write a dataset.yaml to describe it (see docs/formats.md)."
    )
