"""Label noise on purpose: a copy of a CSV-layout dataset with a seeded share of its labels flipped.

What the label-issue benchmark (``bench/label_issues.py``), the tests and a curious user
(``python -m engine label-noise``) start from: the flipped images are known, so what the Review page
and ``python -m engine label-issues`` flag can be checked against them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.spec import read_spec
from engine.errors import DatasetError
from engine.io import atomic_write

NOISE_FILE = "label_noise.csv"  # written beside the copy's spec: sample_id, true_label, given_label


@dataclass
class NoisyCopy:
    """The copy's spec path and the flipped rows (``sample_id``, ``true_label``, ``given_label``)."""

    spec_path: Path
    flipped: pd.DataFrame


def inject_label_noise(spec_path: str | Path, out: str | Path, *, fraction: float = 0.1, seed: int = 0,
                       overwrite: bool = False) -> NoisyCopy:
    """Copy the dataset folder of ``spec_path`` to ``out`` and flip ``fraction`` of its training labels.

    Each flipped row gets another class drawn uniformly (with ``seed``); the truth is written to
    ``out/label_noise.csv``. Only the CSV layout is supported (a folder layout would have to move files).
    """
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    if spec.layout != "csv":
        raise DatasetError(f"Dataset spec {str(spec_path)!r} has layout {spec.layout!r}; label noise is injected "
                           "into CSV-layout datasets only (their labels live in one column).")
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"The 'fraction' parameter must be in (0, 1). Got {fraction!r} instead.")
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise DatasetError(f"{str(out)!r} exists; choose another folder or pass overwrite=True (--overwrite).")
        shutil.rmtree(out)
    shutil.copytree(spec_path.parent, out, ignore=shutil.ignore_patterns("*.overrides.yaml", NOISE_FILE))
    csv_path = out / spec.train.csv
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    labels = frame[spec.train.label_column].to_numpy(dtype=object)
    classes = np.asarray(sorted(set(labels)), dtype=object)
    if len(classes) < 2:
        raise DatasetError(f"CSV {str(csv_path)!r} has a single class; there is no other label to flip to.")
    rng = np.random.default_rng(seed)
    n_flip = int(round(fraction * len(frame)))
    rows = np.sort(rng.choice(len(frame), size=n_flip, replace=False))
    current = pd.Index(classes).get_indexer(labels[rows])
    shift = rng.integers(1, len(classes), size=n_flip)  # another class, uniformly
    new = classes[(current + shift) % len(classes)]
    ids = frame[spec.train.id_column or spec.train.path_column].to_numpy(dtype=object)[rows]
    flipped = pd.DataFrame({"sample_id": ids.astype(str), "true_label": labels[rows].astype(str),
                            "given_label": new.astype(str)})
    frame.loc[rows, spec.train.label_column] = new
    atomic_write(csv_path, lambda p: frame.to_csv(p, index=False))
    atomic_write(out / NOISE_FILE, lambda p: flipped.to_csv(p, index=False))
    return NoisyCopy(spec_path=out / spec_path.name, flipped=flipped)


def read_label_noise(spec_path: str | Path) -> pd.DataFrame:
    """The flipped rows recorded beside a noisy copy's spec; :class:`DatasetError` when there is no record."""
    path = Path(spec_path).parent / NOISE_FILE
    if not path.is_file():
        raise DatasetError(f"{str(path)!r} does not exist: {str(spec_path)!r} is not a copy made by "
                           "inject_label_noise.")
    return pd.read_csv(path, dtype=str, keep_default_na=False)
