"""A problem found in a dataset: what kind, which file, and a message a person can act on; how much it matters.

Severity is a property of the kind (:data:`PROBLEM_SEVERITY`, :func:`severity_of`):

- ``must_fix``: training or the submission is wrong until it is fixed — an image that does not
  decode, a test image that is also a training image (leakage), copies with conflicting labels, a
  file the CSV names that is missing or outside the dataset folder, a sample-submission id without
  a test image (the submission would lack its row);
- ``worth_a_look``: may hurt, may be fine — duplicates, tiny or extreme images, skipped rows and files;
  a kind missing from the table (a new check) defaults here;
- ``note``: handled on decode, said for completeness — mode conversions (16-bit, alpha, palette, CMYK).
"""

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
    "one_class": "fewer than two classes have images (nothing to classify)",
}


SEVERITIES = ("must_fix", "worth_a_look", "note")  # most serious first
SEVERITY_LABELS = {"must_fix": "Must fix", "worth_a_look": "Worth a look", "note": "Notes"}
SEVERITY_DESCRIPTIONS = {
    "must_fix": "Training or the submission is wrong until these are fixed.",
    "worth_a_look": "These may hurt training or may be fine: check a few.",
    "note": "Handled when the images are decoded; listed for completeness.",
}
DEFAULT_SEVERITY = "worth_a_look"
PROBLEM_SEVERITY = {
    "corrupt": "must_fix",
    "train_test_duplicate": "must_fix",
    "conflicting_labels": "must_fix",
    "missing": "must_fix",
    "outside_root": "must_fix",
    "missing_test_image": "must_fix",
    "one_class": "must_fix",
    "odd_mode": "note",
}


def severity_of(kind: str) -> str:
    """``must_fix``, ``worth_a_look`` or ``note`` for a problem kind (:data:`DEFAULT_SEVERITY` when not listed)."""
    return PROBLEM_SEVERITY.get(kind, DEFAULT_SEVERITY)
