"""Detect the layout of a plain dataset folder and describe it as a :class:`DatasetSpec`.

Rules, tried in order:

1. A CSV (``train.csv`` first, else the only CSV that is not a sample submission) with a column whose
   values name existing image files, and a label column -> ``csv`` layout. The label column is the
   one with a usual name (``label``, ``target``, ``class``, ...), else the only other column whose
   values look like class names: free text (long values, many words), mostly unique values and
   non-integer numbers are refused. A column named like ``patient_id`` / ``group`` / ``subject``
   becomes the group column. Why each column was chosen is written in the spec (``detected``),
   and shown by ``scan`` and on the Data page.
2. A ``train/`` sub-folder holding class sub-folders -> ``folder`` layout over ``train/``.
3. The folder itself holds class sub-folders -> ``folder`` layout over ``.``.

A ``test/`` (or ``test_images/``) folder becomes the test images, and ``sample_submission.csv``
the template (first column the id, second the target).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from engine.data.images import is_image_path
from engine.data.spec import DatasetSpec, SubmissionSpec, TestSpec, TrainSpec
from engine.errors import DatasetError

log = logging.getLogger(__name__)

LABEL_NAMES = ("label", "labels", "target", "class", "class_name", "category", "y", "diagnosis")
GROUP_NAMES = ("group", "group_id", "patient_id", "patient", "subject", "subject_id", "person_id", "user_id", "case_id")
IMAGE_DIR_CANDIDATES = (".", "train", "train_images", "images", "imgs")
TEST_DIR_NAMES = ("test", "test_images", "test_imgs")
SAMPLE_ROWS = 200  # CSV rows read to recognise the columns
# A label column holds class names: short, and each shared by several rows. Free text (notes, captions)
# and per-row values (ids, measurements) are refused as labels.
FREE_TEXT_WORDS = 4  # median words per value above which a column reads as free text
FREE_TEXT_CHARS = 40  # median characters per value above which a column reads as free text
MAX_DISTINCT_SHARE = 0.5  # more distinct values than this share of the rows: not classes


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


def _read_head(csv: Path) -> pd.DataFrame:
    """The first rows of a CSV as text; :class:`DatasetError` naming the file when it cannot be parsed."""
    try:
        return pd.read_csv(csv, dtype=str, nrows=SAMPLE_ROWS, encoding_errors="replace")
    except (OSError, ValueError) as e:  # pandas' ParserError / EmptyDataError are ValueErrors
        raise DatasetError(f"CSV file {csv.name!r} cannot be parsed ({type(e).__name__}: {e}); fix it, or write a "
                           "dataset.yaml that names the dataset's files (see docs/formats.md).") from None


def _label_verdict(values: pd.Series) -> str | None:
    """Why a column cannot hold class labels (free text, unique values, continuous numbers...), or None if it can."""
    values = values.dropna().astype(str).str.strip()
    values = values[values != ""]
    n, distinct = len(values), values.nunique()
    if distinct < 2:
        return f"it holds {'a single value' if distinct else 'no value'}"
    words = float(values.str.split().str.len().median())
    length = float(values.str.len().median())
    if words > FREE_TEXT_WORDS or length > FREE_TEXT_CHARS:
        return f"it looks like free text ({distinct} distinct values, {words:g} words / {length:g} characters each)"
    if distinct > MAX_DISTINCT_SHARE * n:
        return f"most of its values are unique ({distinct} distinct in {n} rows), not classes shared by several images"
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers != numbers.round()).any():
        return f"it holds measurements, not classes ({distinct} distinct non-integer numbers)"
    return None


def _choose_label(frame: pd.DataFrame, path_col: str, group: str | None) -> tuple[str | None, str]:
    """(label column or None, why): a usual label name first, else the one other column that looks like classes."""
    lower = {str(c).lower(): c for c in frame.columns}
    named = next((lower[n] for n in LABEL_NAMES if n in lower), None)
    if named is not None:
        return named, f"its name is a usual name for the label column ({', '.join(LABEL_NAMES)})"
    others = [c for c in frame.columns if c not in (path_col, group)]
    verdicts = {c: _label_verdict(frame[c]) for c in others}
    fit = [c for c, why in verdicts.items() if why is None]
    rejected = "; ".join(f"not {c!r}: {why}" for c, why in verdicts.items() if why is not None)
    if len(fit) == 1:
        (label,) = fit
        distinct = frame[label].dropna().nunique()
        return label, (f"no column has a usual label name, and it is the only other column that looks like class "
                       f"names ({distinct} distinct values in {len(frame)} rows)" + (f"; {rejected}" if rejected else ""))
    if fit:
        return None, (f"no column has a usual label name ({', '.join(LABEL_NAMES)}) and several look like classes: "
                      f"{fit}; name the right one in dataset.yaml (train.label_column)")
    return None, (f"no column has a usual label name ({', '.join(LABEL_NAMES)}) and none looks like class labels"
                  + (f" ({rejected})" if rejected else ""))


def _detect_csv_columns(csv: Path, folder: Path) -> tuple[dict | None, str]:
    """(train spec fields, what was found) for a CSV; the fields are None when it does not describe a dataset."""
    frame = _read_head(csv)
    for images in IMAGE_DIR_CANDIDATES:
        base = folder / images
        for col in frame.columns:
            vals = frame[col].dropna().astype(str).head(20)
            if vals.empty or not any(is_image_path(v) for v in vals):
                continue
            hits = sum((base / v).is_file() for v in vals)
            if hits >= max(1, len(vals) // 2):
                lower = {str(c).lower(): c for c in frame.columns}
                group = next((lower[n] for n in GROUP_NAMES if n in lower), None)
                label, why = _choose_label(frame, col, group)
                if label is None:
                    return None, f"{csv.name!r} names images in column {col!r}, but {why}"
                detected = {"path_column": {"column": str(col), "reason": f"its values name image files in {images!r}"},
                            "label_column": {"column": str(label), "reason": why}}
                if group is not None:
                    detected["group_column"] = {"column": str(group), "reason": "its name is a usual group column name"}
                return {"images": images, "path_column": col, "label_column": label, "group_column": group,
                        "detected": detected}, ""
    return None, f"no column of {csv.name!r} names image files that exist"


def detect_spec(folder: str | Path) -> DatasetSpec:
    """Describe a folder as a dataset spec, or raise :class:`DatasetError` saying what was expected."""
    folder = Path(folder)
    name = folder.resolve().name or "dataset"
    test = next((TestSpec(images=d) for d in TEST_DIR_NAMES if (folder / d).is_dir()), None)
    submission = None
    sub_csv = next(iter(sorted(folder.glob("*submission*.csv"))), None)
    if sub_csv is not None:
        cols = list(_read_head(sub_csv).columns)
        if len(cols) < 2:
            raise DatasetError(f"Sample submission {sub_csv.name!r} has the column(s) {cols}; a template needs an id "
                               "column and a target column. Fix it, or rename it so it is not taken for one.")
        submission = SubmissionSpec(csv=sub_csv.name, id_column=str(cols[0]), target_column=str(cols[1]))
    csv = _find_csv(folder)
    csv_note = ""
    if csv is not None:
        try:
            cols, csv_note = _detect_csv_columns(csv, folder)
        except DatasetError as e:  # a broken CSV beside class folders does not hide them; said either way
            cols, csv_note = None, str(e)
            log.warning("%s", e)
        if cols is not None:
            detected = cols.pop("detected")
            train = TrainSpec(csv=csv.name, **cols)
            return DatasetSpec(name=name, layout="csv", train=train, test=test, sample_submission=submission,
                               detected=detected)
    for images in ("train", "train_images", "."):
        if _has_class_subfolders(folder / images):
            return DatasetSpec(name=name, layout="folder", train=TrainSpec(images=images), test=test,
                               sample_submission=submission)
    entries = sorted(os.listdir(folder))[:10]
    raise DatasetError(
        f"Cannot tell the layout of folder {str(folder)!r} (it holds {entries}{'...' if len(entries) == 10 else ''}). "
        "Expected one sub-folder of images per class (optionally under train/), or a train.csv with an "
        "image-path column and a label column" + (f" ({csv_note})" if csv_note else "")
        + ". Write a dataset.yaml to describe it (see docs/formats.md)."
    )
