"""EDA statistics the Data page draws: pure functions of the manifest and the scan table (no I/O).

- :func:`class_distribution`, :func:`imbalance_ratio`: class balance;
- :func:`metadata_vs_label`: a metadata column against the label (rare values pooled, numbers binned);
- :func:`property_summary`: image properties per class (or per split);
- :func:`find_problems`, :func:`problems_table`: corrupt, duplicate, tiny, extreme and odd images;
- :func:`normalization_stats`: the training images' mean / std for normalization;
- :func:`split_distribution`: the class make-up of each fold and of the holdout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from engine.data.hashing import connected_groups, hamming, hashes_to_uint64, near_duplicate_pairs
from engine.data.manifest import natural_class_order
from engine.data.problems import SEVERITIES, Problem, severity_of
from engine.errors import DatasetError

OTHER = "other"
MISSING = "(missing)"
PROBLEM_COLUMNS = ["kind", "path", "message", "severity"]
SUMMARY_PROPERTIES = ["width", "height", "aspect", "brightness", "file_size"]
# Modes a model takes as they are; anything else is converted on decode and worth a word.
PLAIN_MODES = frozenset({"RGB", "L"})
_MODE_NOTES = {
    "RGBA": "has an alpha channel; transparent pixels are composited on white when decoded",
    "LA": "is grayscale with an alpha channel; transparent pixels are composited on white when decoded",
    "PA": "is a palette image with alpha; it is converted to RGB on white when decoded",
    "P": "is a palette (indexed-colour) image; it is converted to RGB when decoded",
    "CMYK": "is CMYK (print colours); it is converted to RGB when decoded, and colours may shift",
    "YCbCr": "is stored as YCbCr; it is converted to RGB when decoded",
    "1": "is black-and-white (1 bit); it is expanded to 8-bit RGB when decoded",
    "I;16": "is 16-bit grayscale; it is scaled to 8 bits (divided by 257) when decoded",
    "I": "has 32-bit integer pixels; they are scaled to 8 bits when decoded",
    "F": "has floating-point pixels; they are min-max scaled to 8 bits when decoded",
}


# ---------------------------------------------------------------- class balance


def class_distribution(manifest: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Images per class: columns ``label``, ``count``, ``share`` (0..1), one row per class in ``classes`` order."""
    counts = manifest["label"].astype(str).value_counts().reindex([str(c) for c in classes], fill_value=0)
    total = int(counts.sum())
    return pd.DataFrame({
        "label": [str(c) for c in classes],
        "count": counts.to_numpy(dtype=np.int64),
        "share": counts.to_numpy(dtype=float) / total if total else np.zeros(len(counts)),
    })


def imbalance_ratio(counts) -> float:
    """Images in the largest class per image in the smallest: 1.0 is balanced; ``inf`` when a class has none.

    ``counts``: per-class counts (a Series, array or list), or :func:`class_distribution`'s frame. NaN when empty.
    """
    if isinstance(counts, pd.DataFrame):
        counts = counts["count"]
    values = np.asarray(counts, dtype=float).ravel()
    if values.size == 0:
        return float("nan")
    smallest, largest = float(values.min()), float(values.max())
    if smallest <= 0:
        return float("inf") if largest > 0 else float("nan")
    return largest / smallest


# ---------------------------------------------------------------- metadata against the label


def _label_columns(manifest: pd.DataFrame) -> list[str]:
    if "label_index" in manifest.columns:
        pairs = manifest[["label", "label_index"]].drop_duplicates().sort_values("label_index")
        return pairs["label"].astype(str).tolist()
    return natural_class_order(manifest["label"])


def _binned(values: pd.Series, bins: int) -> tuple[pd.Series, list[str]]:
    """Numeric values -> (interval name per value, names in increasing order); quantile bins, so each holds
    a fair share of the images. Missing values stay missing."""
    codes = pd.qcut(pd.to_numeric(values, errors="coerce"), q=bins, duplicates="drop")
    names = [f"{iv.left:.4g}–{iv.right:.4g}" for iv in codes.cat.categories]
    named = codes.cat.rename_categories(names).astype(object)
    return named.where(codes.notna(), None), names


def metadata_vs_label(manifest: pd.DataFrame, column: str, *, max_values: int = 20) -> pd.DataFrame:
    """Crosstab of a metadata column against the label: rows = the column's values, columns = labels (class
    order), values = image counts.

    Text-like columns keep their ``max_values - 1`` most frequent values and pool the rest as ``"other"``;
    numeric columns with more than ``max_values`` distinct values are cut into up to 10 quantile bins
    (rows ``"lo–hi"`` in increasing order). Missing values form a ``"(missing)"`` row. Row order: bins in
    order, else by frequency; ``"other"`` and ``"(missing)"`` last.
    """
    if column not in manifest.columns:
        raise DatasetError(
            f"The manifest has no column {column!r}; its columns are {list(map(str, manifest.columns))}."
        )
    if max_values < 2:
        raise DatasetError(f"max_values must be at least 2; got {max_values!r}.")
    values = manifest[column]
    labels = manifest["label"].astype(str)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique(dropna=True) > max_values:
        keys, order = _binned(values, min(10, max_values))
    else:
        text = values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))
        freq = text.value_counts(dropna=True)
        top = freq.index[: max_values - 1] if len(freq) > max_values else freq.index
        keys = text.where(text.isin(top) | text.isna(), OTHER)
        if numeric:  # a few distinct numbers (a score 1-5, a year): in numeric order, not by frequency
            top = sorted(top, key=float)
        order = [str(v) for v in top]
        if len(freq) > max_values:
            order.append(OTHER)
    keys = keys.where(pd.notna(keys), MISSING)
    if (keys == MISSING).any():
        order.append(MISSING)
    table = pd.crosstab(pd.Series(keys.to_numpy(), name=column), pd.Series(labels.to_numpy(), name="label"))
    table = table.reindex(index=[o for o in order if o in table.index], columns=_label_columns(manifest),
                          fill_value=0)
    table.index = table.index.astype(str)
    table.index.name = column
    table.columns.name = "label"
    return table.astype(np.int64)


# ---------------------------------------------------------------- image properties


def property_summary(scan_table: pd.DataFrame, *, by: str = "label") -> pd.DataFrame:
    """Image properties per group (``by``: "label" or "split", or any column of the table).

    One row per group value (classes in natural order; rows without a value, e.g. test images when
    ``by="label"``, are left out): ``by``, ``n`` (images in the group, readable or not), then
    ``<property>_median``, ``_min``, ``_max`` for width, height, aspect, brightness, file_size (over the
    images that could be decoded; NaN for a group with none).
    """
    if by not in scan_table.columns:
        raise DatasetError(f"The scan table has no column {by!r}; its columns are {list(scan_table.columns)}.")
    table = scan_table[scan_table[by].notna()]
    keys = table[by].astype(str)
    groups = natural_class_order(keys.unique())
    out = pd.DataFrame({by: groups})
    out["n"] = keys.value_counts().reindex(groups, fill_value=0).to_numpy(dtype=np.int64)
    readable = table["error"].isna().to_numpy() if "error" in table.columns else np.ones(len(table), bool)
    values = pd.DataFrame({prop: pd.to_numeric(table[prop], errors="coerce").astype(float)
                           for prop in SUMMARY_PROPERTIES}).loc[readable]
    stats = values.groupby(keys[readable].to_numpy()).agg(["median", "min", "max"]).reindex(groups)
    for prop in SUMMARY_PROPERTIES:
        for stat in ("median", "min", "max"):
            out[f"{prop}_{stat}"] = stats[(prop, stat)].to_numpy(dtype=float)
    return out


# ---------------------------------------------------------------- problems


def _mode_note(mode, depth) -> str | None:
    """What decoding does to an image of this mode / bit depth, or None when it is plain 8-bit RGB or gray."""
    if not isinstance(mode, str):
        return None
    deep = not pd.isna(depth) and int(depth) > 8
    if mode in PLAIN_MODES:
        return f"has {int(depth)}-bit samples; only their high 8 bits are kept when decoded" if deep else None
    if mode.startswith("I;16"):
        return _MODE_NOTES["I;16"]
    note = _MODE_NOTES.get(mode, f"is in the unusual mode {mode!r}; it is converted to RGB when decoded")
    return note + ("; its 16-bit samples are reduced to 8 bits" if deep and mode in {"RGBA", "LA"} else "")


def _duplicate_groups(table: pd.DataFrame, near_duplicate_distance: int) -> np.ndarray:
    """Group id per row: rows with the same bytes, or perceptual hashes within the distance, share one."""
    n = len(table)
    left, right = [], []
    for column in ("sha1", "phash"):
        values = table[column]
        present = np.flatnonzero(values.notna().to_numpy())
        if len(present) < 2:
            continue
        codes, uniques = pd.factorize(values.iloc[present].to_numpy())
        first = pd.Series(present).groupby(codes).min().to_numpy()  # first row of each distinct value
        left.append(present)
        right.append(first[codes])  # every row joined to the first row with the same value
        if column == "phash" and near_duplicate_distance > 0 and len(uniques) > 1:
            i, j, _ = near_duplicate_pairs(hashes_to_uint64(uniques), near_duplicate_distance)
            left.append(first[i])
            right.append(first[j])
    if not left:
        return np.arange(n)
    return connected_groups(n, np.concatenate(left), np.concatenate(right))


_MAX_TWIN_CANDIDATES = 500  # in a huge group, an image's twin is sought among the first 500 members


class _Rows:
    """Column arrays of the scan table, so the per-problem loops below index numpy, not pandas."""

    def __init__(self, table: pd.DataFrame):
        self.path = table["path"].astype(object).to_numpy()
        self.sample_id = table["sample_id"].astype(object).to_numpy()
        self.split = table["split"].astype(object).to_numpy()
        self.label = table["label"].astype(object).where(table["label"].notna(), None).to_numpy()
        self.sha1 = table["sha1"].astype(object).where(table["sha1"].notna(), None).to_numpy()
        phash = table["phash"]
        present = phash.notna().to_numpy()
        self.has_phash = present
        self.phash = np.zeros(len(table), dtype=np.uint64)
        self.phash[present] = hashes_to_uint64(phash[present])

    def who(self, k: int) -> str:
        """How a message names row ``k``: its split, sample id and (for training images) label."""
        if self.split[k] == "train":
            label = f" (label {self.label[k]!r})" if isinstance(self.label[k], str) else ""
            return f"training image {self.sample_id[k]!r}{label}"
        if self.split[k] == "test":
            return f"test image {self.sample_id[k]!r}"
        return f"image {self.path[k]!r}"

    def Who(self, k: int) -> str:  # noqa: N802 - the capitalized form, to open a sentence
        text = self.who(k)
        return text[:1].upper() + text[1:]


def _twin(rows: _Rows, k: int, candidates: np.ndarray, max_distance: int) -> tuple[int, int] | None:
    """The candidate closest to row ``k`` — same bytes (distance 0) first, else the smallest perceptual-hash
    distance, the earliest on a tie — or None when none is within ``max_distance``."""
    candidates = candidates[candidates != k][:_MAX_TWIN_CANDIDATES]
    if rows.sha1[k] is not None:
        for c in candidates:
            if rows.sha1[c] == rows.sha1[k]:
                return int(c), 0
    if not rows.has_phash[k]:
        return None
    usable = candidates[rows.has_phash[candidates]]
    if not len(usable):
        return None
    d = hamming(rows.phash[usable], rows.phash[k])
    best = int(np.argmin(d))
    return (int(usable[best]), int(d[best])) if d[best] <= max_distance else None


def _duplicate_problems(table: pd.DataFrame, near_duplicate_distance: int) -> list[Problem]:
    """Duplicates, group by group (same bytes, or perceptual hashes linked by near pairs).

    In each split of a group, every image after the first names its closest other image of that split;
    every test image close to a training image names that image instead (``train_test_duplicate``). An
    image is only named with a twin within ``near_duplicate_distance`` bits (or identical bytes), so a
    long chain of similar images never reports a pair further apart than that.
    """
    groups = _duplicate_groups(table, near_duplicate_distance)
    sizes = np.bincount(groups) if len(groups) else np.zeros(0, np.int64)
    in_group = np.flatnonzero(sizes[groups] > 1)
    problems: list[Problem] = []
    if not len(in_group):
        return problems
    rows = _Rows(table)
    # Groups in the order of their first row; inside a group, table order (training rows come first).
    order = in_group[np.argsort(groups[in_group], kind="stable")]
    bounds = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0, True])
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        members = np.sort(order[start:stop])
        train = members[rows.split[members] == "train"]
        test = members[rows.split[members] != "train"]
        problems += _conflicts(rows, train)
        group = f" (one of {len(members)} similar images)" if len(members) > 2 else ""
        for same_split in (train, test):
            for pos, k in enumerate(same_split):
                found = _twin(rows, k, train, near_duplicate_distance) if rows.split[k] == "test" else None
                kind = "train_test_duplicate"
                if found is None and pos > 0:
                    found = _twin(rows, k, same_split, near_duplicate_distance)
                    kind = None
                if found is None:
                    continue
                twin, d = found
                if rows.sha1[k] is not None and rows.sha1[k] == rows.sha1[twin]:
                    how, kind = "is byte-identical to", kind or "exact_duplicate"
                else:
                    how = f"looks near-identical ({d} of 64 perceptual-hash bits differ) to"
                    kind = kind or "near_duplicate"
                if kind == "train_test_duplicate":
                    advice = "the model has seen this test image in training, so its score on it will be too good"
                elif rows.split[k] == "train":
                    advice = "copies count twice and can land in different folds, which flatters validation; keep one"
                else:
                    advice = "keep one copy unless the competition needs both"
                problems.append(Problem(kind, str(rows.path[k]),
                                        f"{rows.Who(k)} {how} {rows.who(twin)}{group}: {advice}."))
    return problems


def _conflicts(rows: _Rows, train: np.ndarray) -> list[Problem]:
    labels = sorted({rows.label[k] for k in train if isinstance(rows.label[k], str)})
    if len(labels) < 2:
        return []
    listed = ", ".join(f"{rows.sample_id[k]!r} ({rows.label[k]})" for k in train[:6]) + (" ..." if len(train) > 6 else "")
    return [Problem(
        "conflicting_labels", str(rows.path[train[0]]),
        f"{len(train)} copies of one image carry different labels {labels}: {listed}. Correct the labels, or keep "
        "one copy: the model cannot learn both.",
    )]


def corrupt_problems(scan_table: pd.DataFrame) -> list[Problem]:
    """A ``corrupt`` problem for every row of the scan table whose ``error`` is set (unreadable, truncated, gone)."""
    table = _with_defaults(scan_table)
    return _corrupt_problems(table, _Rows(table))


def _corrupt_problems(table: pd.DataFrame, rows: _Rows) -> list[Problem]:
    error = table["error"]
    return [Problem("corrupt", str(rows.path[k]), f"{rows.Who(k)} {error.iat[k]}; remove it or replace it with a "
                    "good copy.") for k in np.flatnonzero(error.notna().to_numpy())]


def _with_defaults(scan_table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``split`` / ``sample_id`` / ``label`` filled in when a bare file scan lacks them."""
    table = scan_table.reset_index(drop=True)
    defaults = {"split": "train", "sample_id": table["path"], "label": None}
    return table.assign(**{c: v for c, v in defaults.items() if c not in table.columns})


def find_problems(scan_table: pd.DataFrame, *, tiny_side: int = 16, max_aspect: float = 4.0,
                  near_duplicate_distance: int = 4) -> list[Problem]:
    """Every problem the scan table shows, each naming the image (``path`` as in the table) and what to do.

    Kinds (see ``engine.data.problems.PROBLEM_KINDS``): ``corrupt`` (the row's ``error``), ``exact_duplicate``
    (same bytes), ``near_duplicate`` (perceptual hashes at most ``near_duplicate_distance`` bits apart),
    ``train_test_duplicate`` (a test image equal or near-identical to a training image), ``conflicting_labels``
    (copies with different labels; one problem per group), ``tiny`` (a side under ``tiny_side`` pixels),
    ``extreme_aspect`` (longer / shorter side above ``max_aspect``), ``odd_mode`` (not plain 8-bit RGB or
    grayscale). Duplicates are grouped (same bytes, or hashes linked by near pairs): every member after the
    first names its closest earlier member, and a test image its closest training image.
    """
    table = _with_defaults(scan_table)
    rows = _Rows(table)
    problems = _corrupt_problems(table, rows)
    error = table["error"]
    problems += _duplicate_problems(table, near_duplicate_distance)

    width = pd.to_numeric(table["width"], errors="coerce").astype(float).to_numpy()
    height = pd.to_numeric(table["height"], errors="coerce").astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(width, height) / np.minimum(width, height)
    readable = error.isna().to_numpy()
    for k in np.flatnonzero(readable & (np.minimum(width, height) < tiny_side)):
        problems.append(Problem("tiny", str(rows.path[k]), f"{rows.Who(k)} is only {int(width[k])}x{int(height[k])} "
                                f"pixels (a side under {tiny_side}); at training size it is mostly blur. Check that it "
                                "is a real image, or drop it."))
    for k in np.flatnonzero(readable & (ratio > max_aspect)):
        problems.append(Problem("extreme_aspect", str(rows.path[k]), f"{rows.Who(k)} is {int(width[k])}x"
                                f"{int(height[k])} pixels, {ratio[k]:.1f}:1 (more than {max_aspect:g}:1); resizing "
                                "it to a square squashes it. Crop or pad it, or check it is not several images in one."))
    modes = table["mode"].astype(object).to_numpy()
    depths = pd.to_numeric(table["bit_depth"], errors="coerce").astype(float).to_numpy()
    formats = table["format"].astype(object).to_numpy()
    plain = np.isin(modes, list(PLAIN_MODES)) & ~(depths > 8)
    for k in np.flatnonzero(~plain & pd.notna(modes)):
        note = _mode_note(modes[k], depths[k])
        if note is not None:
            problems.append(Problem("odd_mode", str(rows.path[k]), f"{rows.Who(k)} ({formats[k]}, mode {modes[k]}) "
                                    f"{note}."))
    return problems


def problems_table(problems: Iterable[Problem]) -> pd.DataFrame:
    """Problems as a table with columns ``kind``, ``path``, ``message``, ``severity`` (``must_fix``,
    ``worth_a_look``, ``note``: :func:`engine.data.problems.severity_of`), the most serious first and
    otherwise in the order given."""
    rows = [{**p.to_dict(), "severity": severity_of(p.kind)} for p in problems]
    table = pd.DataFrame(rows, columns=PROBLEM_COLUMNS).astype({c: "str" for c in PROBLEM_COLUMNS})
    rank = table["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    return table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------- normalization


def normalization_stats(scan_table: pd.DataFrame) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel (mean, std) of the training images' pixels on the 0..1 scale, for ``Normalize``.

    Measured on the scan's thumbnails, every decodable training image weighted equally. The std is
    the pooled pixel std (within-image variance plus the spread of image means), as ImageNet's is.
    """
    table = scan_table
    if "split" in table.columns:
        table = table[table["split"] == "train"]
    means = table[["mean_r", "mean_g", "mean_b"]].apply(pd.to_numeric, errors="coerce").astype(float).to_numpy()
    stds = table[["std_r", "std_g", "std_b"]].apply(pd.to_numeric, errors="coerce").astype(float).to_numpy()
    ok = np.isfinite(means).all(axis=1) & np.isfinite(stds).all(axis=1)
    if not ok.any():
        raise DatasetError("No training image could be decoded, so there is no mean / std to normalize with.")
    means, stds = means[ok] / 255.0, stds[ok] / 255.0
    mean = means.mean(axis=0)
    var = (stds**2 + means**2).mean(axis=0) - mean**2
    std = np.sqrt(np.clip(var, 0.0, None))
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)


# ---------------------------------------------------------------- folds


def split_distribution(manifest: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Class make-up of each part of a split: rows ``"fold 0"``, ``"fold 1"``, ... then ``"holdout"``,
    columns the labels in class order, values image counts (0 where a part lacks a class).

    ``split``: ``sample_id``, ``fold`` (-1 for the holdout) and optionally ``is_holdout`` (the run
    directory's ``split.parquet``). Ids not in the manifest are ignored.
    """
    missing = [c for c in ("sample_id", "fold") if c not in split.columns]
    if missing:
        raise DatasetError(f"The split has no column(s) {missing}; its columns are {list(split.columns)}.")
    holdout = split["is_holdout"].astype(bool) if "is_holdout" in split.columns else split["fold"] == -1
    fold = pd.to_numeric(split["fold"], errors="coerce")
    parts = pd.DataFrame({"sample_id": split["sample_id"].astype(str).to_numpy(),
                          "_holdout": holdout.to_numpy(), "_fold": fold.to_numpy()})
    labels = pd.DataFrame({"sample_id": manifest["sample_id"].astype(str).to_numpy(),
                           "label": manifest["label"].astype(str).to_numpy()})
    joined = parts.merge(labels, on="sample_id", how="inner")
    folds = sorted(int(f) for f in joined.loc[~joined["_holdout"], "_fold"].dropna().unique())
    names = [f"fold {f}" for f in folds] + (["holdout"] if joined["_holdout"].any() else [])
    part = np.where(joined["_holdout"], "holdout",
                    "fold " + joined["_fold"].fillna(-1).astype(int).astype(str))
    table = pd.crosstab(pd.Series(part, name="part"), pd.Series(joined["label"].to_numpy(), name="label"))
    table = table.reindex(index=names, columns=_label_columns(manifest), fill_value=0)
    table.index.name = "part"
    table.columns.name = "label"
    return table.astype(np.int64)
