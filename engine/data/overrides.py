"""Label overrides: review decisions (keep, exclude, relabel) kept beside the dataset spec, applied by the manifest.

Never destructive: images and CSV stay as they are. The decisions live in ``<spec stem>.overrides.yaml``
next to the spec (``dataset.yaml`` -> ``dataset.overrides.yaml``; format in docs/formats.md)::

    format_version: 1
    overrides:
      - sample_id: 3/digit_0012.png
        action: relabel            # keep | exclude | relabel
        label: '8'                 # relabel only: the new label, one of the dataset's classes
        given_label: '3'           # the dataset's label when the decision was made
        note: 'label issue: self-confidence 0.02'
        updated_at: '2026-01-01T12:00:00+00:00'

:func:`apply_overrides` is what :func:`engine.data.open_dataset` calls: ``exclude`` drops the row,
``relabel`` changes ``label`` / ``label_index``, ``keep`` (reviewed, the label is right) changes nothing.
The class list is computed before (it never changes with overrides), so runs stay comparable. An entry
that cannot apply (unknown sample, unknown class) is skipped and named in :attr:`AppliedOverrides.skipped`.

A run records the overrides it trained with (:meth:`AppliedOverrides.record`, the run config's
``label_overrides``); training re-applies that record (:func:`overrides_from_record`), not the file,
so later review decisions never change a run that exists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.errors import DatasetError

OVERRIDES_VERSION = 1
ACTIONS = ("keep", "exclude", "relabel")
SPEC_FILENAME = "dataset.yaml"


def overrides_path(spec_path: str | Path) -> Path:
    """The overrides file of a dataset spec (``dataset.yaml`` -> ``dataset.overrides.yaml``), or of a dataset
    folder (its ``dataset.yaml``'s)."""
    spec_path = Path(spec_path)
    if spec_path.is_dir():
        spec_path = spec_path / SPEC_FILENAME
    return spec_path.with_name(f"{spec_path.stem}.overrides.yaml")


@dataclass(frozen=True)
class Override:
    """One decision about one training sample."""

    sample_id: str
    action: str
    label: str | None = None
    given_label: str | None = None
    note: str | None = None
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class LabelOverrides:
    """Every decision by sample id (the file's order kept), and the file it came from (None: a run's record)."""

    entries: dict[str, Override] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, sample_id: str) -> Override | None:
        return self.entries.get(str(sample_id))

    def frame(self) -> pd.DataFrame:
        """One row per decision: ``sample_id``, ``action``, ``label``, ``given_label``, ``note``, ``updated_at``."""
        columns = ["sample_id", "action", "label", "given_label", "note", "updated_at"]
        return pd.DataFrame([asdict(o) for o in self.entries.values()], columns=columns)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(ACTIONS, 0)
        for o in self.entries.values():
            out[o.action] += 1
        return out


def _check_action(action: str) -> str:
    if action not in ACTIONS:
        raise DatasetError(f"The 'action' parameter must be a str among {list(ACTIONS)}. Got {action!r} instead.")
    return action


def parse_overrides(data: Any, *, source: str = "label overrides") -> LabelOverrides:
    """Validate the file's mapping; :class:`DatasetError` names the entry and the field."""
    if data is None:
        return LabelOverrides()
    if not isinstance(data, dict):
        raise DatasetError(f"{source} must be a YAML mapping with 'format_version' and 'overrides'; "
                           f"got {type(data).__name__}.")
    version = data.get("format_version", OVERRIDES_VERSION)
    if version != OVERRIDES_VERSION:
        raise DatasetError(f"{source} has format_version {version!r}; this version of Fold Studio reads "
                           f"format_version {OVERRIDES_VERSION}.")
    unknown = sorted(set(data) - {"format_version", "overrides"})
    if unknown:
        raise DatasetError(f"{source} has unknown field(s) {unknown}; allowed: ['format_version', 'overrides'].")
    items = data.get("overrides") or []
    if not isinstance(items, list):
        raise DatasetError(f"{source}: 'overrides' must be a list of entries. Got {type(items).__name__}.")
    entries: dict[str, Override] = {}
    allowed = set(Override.__dataclass_fields__)
    for i, item in enumerate(items):
        where = f"{source}, entry {i + 1}"
        if not isinstance(item, dict):
            raise DatasetError(f"{where} must be a mapping with sample_id and action. Got {item!r}.")
        extra = sorted(set(item) - allowed)
        if extra:
            raise DatasetError(f"{where} has unknown field(s) {extra}; allowed: {sorted(allowed)}.")
        if item.get("sample_id") in (None, ""):
            raise DatasetError(f"{where} has no sample_id.")
        action = str(item.get("action"))
        if action not in ACTIONS:
            raise DatasetError(f"{where}: the 'action' field must be one of {list(ACTIONS)}. "
                               f"Got {item.get('action')!r}.")
        if action == "relabel" and item.get("label") in (None, ""):
            raise DatasetError(f"{where}: action 'relabel' needs a 'label' (the new class).")
        fields = {k: (None if item.get(k) is None else str(item[k])) for k in allowed}
        if action != "relabel":
            fields["label"] = None
        entries[str(item["sample_id"])] = Override(**fields)  # a later entry for the same sample wins
    return LabelOverrides(entries=entries)


def read_overrides(spec_path: str | Path) -> LabelOverrides:
    """The overrides of a dataset spec (or folder); empty when it has no overrides file."""
    path = overrides_path(spec_path)
    if not path.is_file():
        return LabelOverrides(path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"Label overrides {str(path)!r} cannot be read: {e}.") from None
    except yaml.YAMLError as e:
        raise DatasetError(f"Label overrides {str(path)!r} are not valid YAML: {e}") from None
    found = parse_overrides(data, source=f"Label overrides {str(path)!r}")
    found.path = path
    return found


def write_overrides(spec_path: str | Path, overrides: LabelOverrides) -> Path:
    """Write every decision (atomically) to the spec's overrides file; returns its path."""
    from engine.io import atomic_write_text

    path = overrides_path(spec_path)
    data = {"format_version": OVERRIDES_VERSION, "overrides": [o.to_dict() for o in overrides.entries.values()]}
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def set_override(spec_path: str | Path, sample_id: str, action: str, *, label: str | None = None,
                 given_label: str | None = None, note: str | None = None,
                 classes: list[str] | None = None) -> LabelOverrides:
    """Record one decision (replacing the sample's earlier one) and write the file; returns all decisions.

    ``classes`` (the dataset's class list) checks a relabel's ``label`` before anything is written.
    """
    _check_action(action)
    if action == "relabel":
        if label is None or str(label) == "":
            raise DatasetError("The 'label' parameter is required to relabel a sample (the new class).")
        if classes is not None and str(label) not in classes:
            raise DatasetError(f"The 'label' parameter must be one of the dataset's classes {classes[:20]}. "
                               f"Got {label!r} instead.")
        if given_label is not None and str(label) == str(given_label):
            raise DatasetError(f"Sample {sample_id!r} is already labelled {label!r}; to confirm it, use action 'keep'.")
    overrides = read_overrides(spec_path)
    entry = Override(sample_id=str(sample_id), action=action, label=None if action != "relabel" else str(label),
                     given_label=None if given_label is None else str(given_label), note=note,
                     updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    overrides.entries.pop(entry.sample_id, None)
    overrides.entries[entry.sample_id] = entry
    write_overrides(spec_path, overrides)
    return overrides


def remove_override(spec_path: str | Path, sample_id: str) -> LabelOverrides:
    """Forget a sample's decision (the dataset's own label applies again); returns the decisions left."""
    overrides = read_overrides(spec_path)
    if overrides.entries.pop(str(sample_id), None) is not None:
        write_overrides(spec_path, overrides)
    return overrides


# ---------------------------------------------------------------- applying


@dataclass
class AppliedOverrides:
    """What the manifest did with the overrides: the rows dropped and relabelled, and the entries it skipped.

    ``excluded``: ``sample_id``, ``path``, ``label`` of each dropped row; ``relabelled``: ``sample_id``,
    ``label`` (new), ``given_label`` (the dataset's); ``kept``: how many samples were confirmed.
    """

    path: Path | None
    excluded: pd.DataFrame
    relabelled: pd.DataFrame
    kept: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.excluded) + len(self.relabelled)

    def record(self) -> dict[str, Any] | None:
        """What a run stores in its config's ``label_overrides`` (None when nothing changed the manifest)."""
        if not self.changes:
            return None
        excluded = sorted(self.excluded["sample_id"].astype(str))
        relabelled = dict(sorted(zip(self.relabelled["sample_id"].astype(str), self.relabelled["label"].astype(str),
                                     strict=True)))
        digest = hashlib.sha256(json.dumps([excluded, relabelled]).encode()).hexdigest()[:16]
        return {"file": None if self.path is None else str(self.path), "digest": digest,
                "excluded": excluded, "relabelled": relabelled}

    def summary(self) -> str:
        parts = [f"{len(self.excluded)} excluded", f"{len(self.relabelled)} relabelled"]
        if self.kept:
            parts.append(f"{self.kept} confirmed")
        return ", ".join(parts)


def overrides_from_record(record: dict[str, Any] | None) -> LabelOverrides:
    """A run's recorded overrides (its config's ``label_overrides``) as decisions to apply again."""
    if not record:
        return LabelOverrides()
    entries = {str(s): Override(str(s), "exclude") for s in record.get("excluded") or []}
    entries.update({str(s): Override(str(s), "relabel", label=str(lbl))
                    for s, lbl in (record.get("relabelled") or {}).items()})
    return LabelOverrides(entries=entries, path=Path(record["file"]) if record.get("file") else None)


def apply_overrides(manifest: pd.DataFrame, classes: list[str], overrides: LabelOverrides
                    ) -> tuple[pd.DataFrame, AppliedOverrides]:
    """The manifest with the decisions applied (vectorized: one join), and what was done."""
    table = overrides.frame()
    ids = manifest["sample_id"].astype(str)
    known = table["sample_id"].isin(set(ids))
    bad_class = (table["action"] == "relabel") & ~table["label"].isin(classes)
    skipped = [f"{sid!r} is not a training sample of this dataset; its '{a}' decision is skipped."
               for sid, a in zip(table.loc[~known, "sample_id"], table.loc[~known, "action"], strict=True)]
    skipped += [f"{sid!r}: relabel to {lbl!r} is skipped, {lbl!r} is not a class of this dataset {classes[:10]}."
                for sid, lbl in zip(table.loc[known & bad_class, "sample_id"], table.loc[known & bad_class, "label"],
                                    strict=True)]
    table = table[known & ~bad_class]
    action = ids.map(table.set_index("sample_id")["action"])
    drop = (action == "exclude").to_numpy()
    excluded = manifest.loc[drop, ["sample_id", "path", "label"]].reset_index(drop=True)
    out = manifest.loc[~drop].copy()
    new_label = ids[~drop].map(table[table["action"] == "relabel"].set_index("sample_id")["label"])
    changed = new_label.notna().to_numpy() & (new_label.to_numpy() != out["label"].to_numpy())
    relabelled = pd.DataFrame({"sample_id": out.loc[changed, "sample_id"].to_numpy(),
                               "label": new_label[changed].to_numpy(),
                               "given_label": out.loc[changed, "label"].to_numpy()})
    if changed.any():
        out.loc[changed, "label"] = new_label[changed].to_numpy()
        out["label_index"] = out["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    applied = AppliedOverrides(path=overrides.path, excluded=excluded, relabelled=relabelled,
                               kept=int((table["action"] == "keep").sum()), skipped=skipped)
    return out.reset_index(drop=True), applied


def resolve_overrides(overrides: Any, spec_path: str | Path | None) -> LabelOverrides | None:
    """What :func:`engine.data.open_dataset`'s ``overrides`` argument means: ``"file"`` (the spec's overrides file,
    if any), None (no overrides), a run's record (a dict), or :class:`LabelOverrides`."""
    if overrides is None:
        return None
    if isinstance(overrides, LabelOverrides):
        return overrides
    if isinstance(overrides, dict):
        return overrides_from_record(overrides)
    if overrides == "file":
        if spec_path is None or not overrides_path(spec_path).is_file():
            return None
        return read_overrides(spec_path)
    raise DatasetError(f"The 'overrides' parameter must be 'file', None, a run's recorded overrides (dict) or "
                       f"LabelOverrides. Got {overrides!r} instead.")


def apply_dataset_overrides(manifest: pd.DataFrame, classes: list[str], overrides: Any,
                            spec_path: str | Path | None) -> tuple[pd.DataFrame, AppliedOverrides | None]:
    """The manifest hook: resolve ``overrides`` (see :func:`resolve_overrides`) and apply them, if any."""
    resolved = resolve_overrides(overrides, spec_path)
    if resolved is None:
        return manifest, None
    return apply_overrides(manifest, classes, resolved)
