"""Training images a run leaves out: the ones the scan could not read (corrupt, truncated, gone).

A real dataset almost always holds a bad file, and one bad file must not cost the whole run. So
before a run is created, every training image the scan marks ``corrupt`` is left out of the
manifest the run trains on; the run's ``config.yaml`` records each one (``excluded``: sample id,
path, why) and the launch says so. The scan's on-disk cache (keyed by path, size and modification
time) makes the check a ``stat`` per file once the Data page, ``scan`` or an earlier launch has
read the images.

:func:`exclude_corrupt` is the rule (a pure function of the manifest and the scan's problems);
:func:`drop_unreadable_images` applies it to a :class:`~engine.data.manifest.Dataset`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable

import pandas as pd

from engine.data.manifest import Dataset
from engine.data.problems import Problem
from engine.errors import DatasetError

log = logging.getLogger(__name__)

EXCLUDED_KEYS = ("sample_id", "path", "reason")


def exclude_corrupt(manifest: pd.DataFrame, problems: Iterable[Problem]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Leave out the manifest rows whose image a ``corrupt`` problem names.

    Returns ``(kept, excluded)``: ``kept`` is the manifest without those rows (index reset, order
    kept); ``excluded`` one dict per row left out, in manifest order, with ``sample_id``, ``path``
    (as in the manifest) and ``reason`` (the problem's message). Other problem kinds are ignored.
    """
    reasons = {os.path.normpath(p.path): p.message for p in problems if p.kind == "corrupt"}
    if not reasons:
        return manifest, []
    paths = manifest["path"].astype(str).map(os.path.normpath)
    bad = paths.isin(reasons).to_numpy()
    excluded = [{"sample_id": str(sid), "path": str(path), "reason": reasons[os.path.normpath(path)]}
                for sid, path in zip(manifest.loc[bad, "sample_id"], manifest.loc[bad, "path"], strict=True)]
    return manifest.loc[~bad].reset_index(drop=True), excluded


def exclusion_note(excluded: list[dict[str, str]], *, limit: int = 5) -> str | None:
    """One message naming the images left out (at most ``limit``, then a count); None when there are none."""
    if not excluded:
        return None
    lines = [f"{len(excluded)} training image(s) the scan could not read are left out of this run (listed under "
             "'excluded' in its config.yaml); replace them with good copies and launch again to train on them:"]
    lines += [f"  - {e['reason']}" for e in excluded[:limit]]
    if len(excluded) > limit:
        lines.append(f"  - ... and {len(excluded) - limit} more")
    return "\n".join(lines)


def drop_unreadable_images(dataset: Dataset, *, workspace: str | os.PathLike | None = None,
                           workers: int | None = None) -> Dataset:
    """The dataset with the training images the scan found unreadable left out of its manifest.

    Scans the training images through the workspace's scan cache (only new or changed files are
    read), applies :func:`exclude_corrupt`, logs :func:`exclusion_note`, and returns a copy whose
    ``manifest`` lacks those rows and whose ``excluded`` lists them. Classes keep their order and
    indices, even a class that loses every image (the split check then refuses it by name). Raises
    :class:`DatasetError` when no training image is readable.
    """
    from engine.data.eda import corrupt_problems
    from engine.data.scan import scan_cache_path, scan_images

    manifest = dataset.manifest
    table, _ = scan_images(manifest["path"].astype(str).tolist(), cache_path=scan_cache_path(dataset, workspace),
                           workers=workers)
    table = table.assign(sample_id=manifest["sample_id"].astype(str).to_numpy(), split="train",
                         label=manifest["label"].astype(str).to_numpy())
    kept, excluded = exclude_corrupt(manifest, corrupt_problems(table))
    if not excluded:
        return dataset
    if kept.empty:
        raise DatasetError(f"No training image of dataset {dataset.name!r} can be read (all {len(manifest)} are "
                           f"corrupt or missing, e.g. {excluded[0]['reason']}). Check the dataset folder "
                           f"{str(dataset.root)!r}.")
    log.warning("%s", exclusion_note(excluded))
    return dataclasses.replace(dataset, manifest=kept, excluded=excluded)
