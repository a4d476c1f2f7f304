"""The built-in demo dataset: scikit-learn's bundled handwritten digits, shaped like a competition.

1,797 real 8x8 scans of the digits 0-9 (UCI "Optical Recognition of Handwritten Digits", shipped
inside scikit-learn, so nothing is downloaded), upscaled to 32x32 RGB PNGs and split the way a
Kaggle competition is: ``train/`` + ``train.csv`` (image, label, and an ``ink`` metadata column
derived from each image's stroke density), ``test/`` without labels, ``sample_submission.csv``
(id, label), ``solution.csv`` (the hidden test labels, to score a submission by hand) and the spec
``dataset.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from engine.data.spec import DatasetSpec, SubmissionSpec, TestSpec, TrainSpec, write_spec
from engine.io import atomic_write
from engine.workspace import datasets_dir

DEMO_NAME = "digits-demo"
DEMO_IMAGE_SIZE = 32
DEMO_TEST_FRACTION = 0.2


def default_demo_dir(workspace=None) -> Path:
    return datasets_dir(workspace) / DEMO_NAME


def _digit_image(pixels: np.ndarray, size: int) -> Image.Image:
    gray = (16 - pixels.reshape(8, 8)) * (255.0 / 16.0)  # dark ink on white paper, as scanned
    img = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), mode="L")
    return img.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def make_demo_dataset(out: str | Path | None = None, *, size: int = DEMO_IMAGE_SIZE, seed: int = 0,
                      overwrite: bool = False) -> Path:
    """Write the demo dataset to ``out`` (default: ``<workspace>/datasets/digits-demo``); return the spec path.

    Idempotent: when ``out/dataset.yaml`` exists and ``overwrite`` is false, nothing is rewritten.
    """
    from sklearn.datasets import load_digits

    out = Path(out) if out is not None else default_demo_dir()
    spec_path = out / "dataset.yaml"
    if spec_path.is_file() and not overwrite:
        return spec_path
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    n_test = int(round(len(order) * DEMO_TEST_FRACTION))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    ink = digits.data.mean(axis=1)
    ink_level = pd.cut(ink, bins=np.quantile(ink, [0, 1 / 3, 2 / 3, 1]), labels=["light", "medium", "heavy"],
                       include_lowest=True).astype(str)

    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    train_rows, test_rows = [], []
    for i in train_idx:
        label = int(digits.target[i])
        name = f"train/{label}/digit_{i:04d}.png"
        (out / "train" / str(label)).mkdir(exist_ok=True)
        _digit_image(digits.data[i], size).save(out / name)
        train_rows.append({"image": f"{label}/digit_{i:04d}.png", "label": label, "ink": ink_level[i]})
    for i in test_idx:
        _digit_image(digits.data[i], size).save(out / "test" / f"test_{i:04d}.png")
        test_rows.append({"id": f"test_{i:04d}", "label": int(digits.target[i])})
    write_csv = lambda frame, name: atomic_write(out / name, lambda p: frame.to_csv(p, index=False))  # noqa: E731
    write_csv(pd.DataFrame(train_rows), "train.csv")
    solution = pd.DataFrame(test_rows)
    write_csv(solution, "solution.csv")
    write_csv(solution.assign(label=0), "sample_submission.csv")
    spec = DatasetSpec(
        name=DEMO_NAME,
        layout="csv",
        train=TrainSpec(images="train", csv="train.csv", path_column="image", label_column="label"),
        test=TestSpec(images="test"),
        sample_submission=SubmissionSpec(csv="sample_submission.csv", id_column="id", target_column="label"),
    )
    return write_spec(spec, spec_path)
