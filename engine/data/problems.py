"""A problem found in a dataset: what kind, which file, and a message a person can act on."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about a dataset. ``kind`` is a short machine-readable tag (see ``PROBLEM_KINDS``)."""

    kind: str
    path: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


PROBLEM_KINDS = {
    "missing": "a file named by the CSV does not exist",
    "not_image": "a file that is not an image (skipped)",
    "outside_root": "a path pointing outside the dataset folder (rejected)",
    "odd_filename": "a file name that is not valid UTF-8 (skipped)",
    "duplicate_id": "a sample id used more than once (later rows skipped)",
    "missing_label": "a CSV row without a label (skipped)",
    "unknown_label": "a label in the sample submission that no training image has",
    "missing_test_image": "an id of the sample submission without a test image",
    "encoding": "a CSV that is not UTF-8 (read as Latin-1)",
    "corrupt": "an image that cannot be decoded (corrupt or truncated)",
    "exact_duplicate": "byte-identical images",
    "near_duplicate": "visually near-identical images (perceptual hash)",
    "train_test_duplicate": "the same image in training and test",
    "conflicting_labels": "duplicate images with different labels",
    "tiny": "an image too small to be useful at the training size",
    "extreme_aspect": "an image with an extreme aspect ratio",
    "odd_mode": "an image in an unusual mode (16-bit, CMYK, palette, alpha...)",
    "small_class": "a class with fewer images than the number of folds",
}
