"""Augmentation pipelines in albumentations' own serialized form — the one format from the
Augmentation lab to the training job.

A pipeline spec is the dict ``A.to_dict(compose)`` returns: ``{"__version__": ..., "transform": {...}}``.
It is saved as YAML or JSON with ``A.save`` and read back with ``A.load`` / ``A.from_dict``.
The engine adds no wrapper of its own, so a pipeline exported here loads in a user's notebook with
``A.load(path, data_format="yaml")`` and the other way round.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError


def _albumentations():
    import albumentations as A

    return A


def pipeline_from_dict(spec: dict[str, Any], *, source: str = "augmentation pipeline"):
    """Build an ``A.Compose`` from its serialized dict; :class:`ConfigError` names what is wrong."""
    A = _albumentations()
    if not isinstance(spec, dict) or "transform" not in spec:
        raise ConfigError(
            f"The {source} must be albumentations' serialized dict with a 'transform' key "
            f"(what A.to_dict returns); got {type(spec).__name__} with keys {list(spec)[:5] if isinstance(spec, dict) else '-'}."
        )
    try:
        pipeline = A.from_dict(spec)
    except Exception as e:  # albumentations raises ValueError, KeyError, pydantic errors...
        raise ConfigError(f"The {source} cannot be built by albumentations: {type(e).__name__}: {e}") from None
    return pipeline


def pipeline_to_dict(pipeline) -> dict[str, Any]:
    """Serialize an albumentations transform (``A.to_dict``)."""
    return _albumentations().to_dict(pipeline)


def dump_pipeline(spec: dict[str, Any], data_format: str = "yaml") -> str:
    """Text of a pipeline dict in YAML or JSON (the formats ``A.save`` writes)."""
    if data_format == "yaml":
        return yaml.safe_dump(spec, sort_keys=False)
    if data_format == "json":
        return json.dumps(spec, indent=2)
    raise ConfigError(f"The 'data_format' parameter must be a str among {{'yaml', 'json'}}. Got {data_format!r} instead.")


def parse_pipeline_text(text: str, *, source: str = "pipeline text") -> dict[str, Any]:
    """Parse YAML or JSON text of a serialized pipeline, validate it by building it, return the dict."""
    try:
        data = yaml.safe_load(io.StringIO(text))  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise ConfigError(f"The {source} is not valid YAML or JSON: {e}") from None
    pipeline_from_dict(data, source=source)
    return data


def load_pipeline_file(path: str | Path) -> dict[str, Any]:
    """Read a pipeline saved as YAML or JSON (by ``A.save`` or the studio)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"Augmentation pipeline file {str(path)!r} cannot be read: {e}.") from None
    return parse_pipeline_text(text, source=f"augmentation pipeline file {str(path)!r}")


def save_pipeline_file(spec: dict[str, Any], path: str | Path) -> Path:
    """Validate and save a pipeline dict; the format follows the suffix (.json, else YAML)."""
    from engine.io import atomic_write_text

    pipeline_from_dict(spec)
    path = Path(path)
    return atomic_write_text(path, dump_pipeline(spec, "json" if path.suffix.lower() == ".json" else "yaml"))
