"""The dataset spec: a small, versioned YAML file that says where a dataset's images and labels are.

Two layouts are supported:

- ``folder``: ``train.images`` holds one sub-folder per class (the sub-folder name is the label).
- ``csv``: ``train.csv`` has an image-path column and a label column (paths relative to
  ``train.images``), optionally a group column (e.g. a patient id) and any other columns, kept as
  metadata.

Optional: ``test.images`` (a folder of unlabelled test images) and ``sample_submission`` (a CSV
template with an id column and a target column). Every path in the YAML is relative to the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from engine.errors import DatasetError
from engine.validation import StrictModel as _Strict
from engine.validation import validate_model

SPEC_VERSION = 1
SPEC_FILENAME = "dataset.yaml"


class TrainSpec(_Strict):
    images: str = Field(".", description="Folder of training images, relative to the spec file.")
    csv: str | None = Field(None, description="CSV with one row per training image (csv layout).")
    path_column: str | None = Field(None, description="CSV column holding each image path, relative to `images`.")
    label_column: str | None = Field(None, description="CSV column holding each image's class.")
    id_column: str | None = Field(None, description="CSV column of sample ids; default: the image path.")
    group_column: str | None = Field(None, description="CSV column grouping samples (e.g. a person id).")
    metadata_columns: list[str] | None = Field(
        None, description="CSV columns kept as metadata; default: every column not used above."
    )


class TestSpec(_Strict):
    images: str = Field(..., description="Folder of unlabelled test images, relative to the spec file.")


class SubmissionSpec(_Strict):
    csv: str = Field(..., description="Sample-submission CSV, relative to the spec file.")
    id_column: str = Field("id", description="Template column of test sample ids.")
    target_column: str = Field("label", description="Template column the prediction goes in.")


class DetectedColumn(_Strict):
    column: str = Field(..., description="The column layout detection chose.")
    reason: str = Field(..., description="Why it chose it.")


class DatasetSpec(_Strict):
    """A dataset description. ``root`` (the spec file's folder) is set on load, not saved."""

    format_version: int = SPEC_VERSION
    name: str
    layout: Literal["folder", "csv"]
    train: TrainSpec
    test: TestSpec | None = None
    sample_submission: SubmissionSpec | None = None
    detected: dict[str, DetectedColumn] | None = Field(
        None, description="Written by layout detection: for each train.*_column it set, the column and why "
                          "(informational; shown only while the column above still names it).")
    follow_links_outside_root: bool = Field(
        False, description="Read images that are symbolic links (or lie in linked folders) pointing outside the "
                           "spec's folder; off: they are skipped as 'outside_root' problems.")

    @model_validator(mode="after")
    def _csv_fields(self) -> DatasetSpec:
        if self.layout == "csv":
            missing = [f for f in ("csv", "path_column", "label_column") if getattr(self.train, f) is None]
            if missing:
                raise ValueError(f"layout 'csv' needs train.{', train.'.join(missing)}")
        return self


def parse_spec(data: dict, *, source: str = "<dict>") -> DatasetSpec:
    """Validate a spec dict (as read from YAML); :class:`DatasetError` lists every bad field."""
    if not isinstance(data, dict):
        raise DatasetError(f"Dataset spec {source!r} must be a YAML mapping, got {type(data).__name__}.")
    version = data.get("format_version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise DatasetError(
            f"Dataset spec {source!r} has format_version {version!r}; this version of Fold Studio reads "
            f"format_version {SPEC_VERSION}."
        )
    return validate_model(DatasetSpec, data, error=DatasetError, what=f"Dataset spec {source!r}")


def read_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a spec YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"Dataset spec {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"Dataset spec {str(path)!r} cannot be read: {e}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DatasetError(f"Dataset spec {str(path)!r} is not valid YAML: {e}") from None
    return parse_spec(data, source=str(path))


def write_spec(spec: DatasetSpec, path: str | Path) -> Path:
    """Write a spec as YAML (atomically), returning the path."""
    from engine.io import atomic_write_text

    path = Path(path)
    data = spec.model_dump(mode="json", exclude_none=True)
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
