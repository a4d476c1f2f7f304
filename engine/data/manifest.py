"""Load a dataset spec into a manifest table, validating everything a person could get wrong.

:func:`open_dataset` is the one entry point: give it a spec YAML, or a folder (it reads the
folder's ``dataset.yaml`` or detects the layout and writes one). It returns a :class:`Dataset`:

- ``manifest``: one row per usable training image with columns ``sample_id``, ``path`` (absolute),
  ``label`` (str), ``label_index`` (int, position in ``classes``), ``group`` (str or missing), then
  the metadata columns;
- ``classes``: the ordered class list (natural order: numeric labels sort as numbers);
- ``test_manifest``: ``sample_id``, ``path`` for the test images (empty when there are none);
- ``problems``: every file or value that was skipped or looks wrong, each naming the file.

Fatal errors (a spec that does not parse, a CSV without the named columns, no usable image at all)
raise :class:`DatasetError`; anything that only affects some rows becomes a :class:`Problem` and the
rest of the dataset stays usable.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.data.images import is_image_path
from engine.data.overrides import AppliedOverrides, apply_dataset_overrides
from engine.data.problems import Problem
from engine.data.spec import SPEC_FILENAME, DatasetSpec, read_spec, write_spec
from engine.errors import DatasetError

MANIFEST_COLUMNS = ["sample_id", "path", "label", "label_index", "group"]
_DATASET_FILE_SUFFIXES = frozenset({".csv", ".yaml", ".yml", ".json", ".txt", ".md", ".parquet"})
_SYSTEM_FILES = frozenset({"Thumbs.db", "desktop.ini"})  # written by file browsers, never data
TEST_COLUMNS = ["sample_id", "path"]


@dataclass
class Dataset:
    """A loaded dataset: the spec, the manifest tables, the class list and the problems found."""

    spec: DatasetSpec
    root: Path
    spec_path: Path | None
    manifest: pd.DataFrame
    classes: list[str]
    test_manifest: pd.DataFrame
    metadata_columns: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Training images left out of ``manifest`` because the scan could not read them (engine.data.exclusions).
    excluded: list[dict[str, str]] = field(default_factory=list)
    overrides: AppliedOverrides | None = None  # label overrides applied to the manifest (engine.data.overrides)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def label_source(self) -> dict[str, str | None]:
        """Where the labels come from: ``column`` (None for the folder layout) and ``reason`` (a sentence)."""
        if self.spec.layout == "folder":
            return {"column": None, "reason": "the name of each image's class sub-folder"}
        column = self.spec.train.label_column
        found = (self.spec.detected or {}).get("label_column")
        if found is not None and found.column == column:
            return {"column": column, "reason": f"chosen by layout detection: {found.reason}"}
        return {"column": column, "reason": "named in the dataset spec (train.label_column)"}

    def class_counts(self) -> pd.Series:
        """Images per class, in class order (classes with no image count 0)."""
        return self.manifest["label"].value_counts().reindex(self.classes, fill_value=0)

    def check_folds(self, k: int) -> list[Problem]:
        """:func:`class_problems` of the class counts for ``k`` folds: one class only, classes smaller than ``k``."""
        return class_problems(self.class_counts(), k)


def label_source_text(source: dict[str, str | None]) -> str:
    """:meth:`Dataset.label_source` as one line: ``Labels: column 'species', chosen by layout detection: ...``."""
    column = f"column {source['column']!r}, " if source["column"] else ""
    return f"Labels: {column}{source['reason']}."


def class_problems(counts: pd.Series, k: int | None = None, *, unit: str = "image(s)",
                   stage: str = "") -> list[Problem]:
    """What makes a class make-up untrainable, as problems naming the classes.

    ``counts``: images (or groups) per class, indexed by class (zeros included). ``one_class``
    when fewer than two classes have any; with ``k``, ``small_class`` for each class with fewer
    than ``k`` (K-fold needs one per fold). ``stage`` ends the sentence's subject (" after the
    holdout"). The one check behind the scan's problems and the refusal of a run's split.
    """
    problems = []
    present = [str(c) for c, n in counts.items() if n > 0]
    if len(present) < 2:
        names = f"only class {present[0]!r}" if present else "no class"
        problems.append(Problem("one_class", present[0] if present else "", f"The dataset has {names} with {unit}"
                                f"{stage}; a classifier needs at least two classes. Add images of another class (one "
                                "sub-folder per class, or another label value in the CSV)."))
    if k is not None:
        most = int(counts.min()) if len(counts) else 0
        fewer = f", or use at most {most} folds" if most >= 2 else ""
        problems += [Problem("small_class", str(label), f"Class {label!r} has {int(n)} {unit}{stage}, fewer than the "
                             f"{k} folds asked for; add images or merge the class{fewer}.")
                     for label, n in counts.items() if n < k]
    return problems


def natural_class_order(labels) -> list[str]:
    """Sort class labels: numerically when every label is an integer, else case-insensitively."""
    uniq = sorted({str(x) for x in labels})
    if all(re.fullmatch(r"-?\d+", u) for u in uniq):
        return sorted(uniq, key=int)
    return sorted(uniq, key=lambda s: (s.casefold(), s))


def _is_valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates (PEP 383)
        return False


def _printable(name: str) -> str:
    """A file name with undecodable bytes shown as ``\\xff`` escapes (what the bytes on disk are)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _inside(path: Path, root: Path) -> bool:
    norm = Path(os.path.normpath(path))
    root_norm = Path(os.path.normpath(root))
    return norm == root_norm or root_norm in norm.parents


class LinkCheck:
    """Where a path really lies once symbolic links are resolved, and whether that is outside ``root``.

    Cheap on big datasets: ``realpath`` once per folder (cached), one ``lstat`` per file.
    """

    def __init__(self, root: Path, *, follow: bool = False):
        self.root = Path(root)
        self.follow = follow
        self._root_real = os.path.realpath(root)
        self._folders: dict[str, str] = {}

    def target_outside(self, path: Path) -> str | None:
        """The resolved path when ``path`` leads outside the root through a link; None when it stays inside."""
        text = os.fspath(path)
        folder = os.path.dirname(text)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        real = os.path.realpath(text) if os.path.islink(text) else os.path.join(real_folder, os.path.basename(text))
        inside = real == self._root_real or real.startswith(self._root_real.rstrip(os.sep) + os.sep)
        return None if inside else real

    def problem(self, path: Path, shown: str, where: str = "") -> Problem | None:
        """An ``outside_root`` problem for a path whose link leaves the root (unless links are followed)."""
        target = None if self.follow else self.target_outside(path)
        if target is None:
            return None
        return Problem("outside_root", shown, f"{where}{shown!r} is a symbolic link (or lies in a linked folder) "
                       f"pointing to {target!r}, outside the dataset folder {str(self.root)!r}; it was skipped. Copy "
                       "the image into the dataset folder, or set 'follow_links_outside_root: true' in dataset.yaml "
                       "if the dataset is linked on purpose.")


def list_image_files(folder: Path, problems: list[Problem], *, root: Path, links: LinkCheck | None = None) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); non-images, undecodable names and (unless
    ``links`` follows them) links leading outside ``root`` become problems."""
    links = links or LinkCheck(root)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            rel = _rel(p, root)
            if not _is_valid_utf8(fn):
                problems.append(
                    Problem(
                        "odd_filename",
                        _printable(rel),
                        f"File name {fn.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 and was skipped; "
                        "rename it with UTF-8 characters.",
                    )
                )
            elif not is_image_path(p):
                # The dataset's own files (train.csv, dataset.yaml) sit in the root when it is the image folder.
                own_file = Path(dirpath) == root and p.suffix.lower() in _DATASET_FILE_SUFFIXES
                if not own_file and fn not in _SYSTEM_FILES:
                    problems.append(Problem("not_image", rel, f"{rel!r} is not an image file and was skipped."))
            elif (escaped := links.problem(p, rel)) is not None:
                problems.append(escaped)
            else:
                found.append(p)
    return found


def _rel(p: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(p, root)).as_posix()
    except ValueError:
        return str(p)


def read_csv_checked(path: Path, problems: list[Problem], *, root: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV, falling back to Latin-1 (with a problem) when it is not UTF-8."""
    rel = _rel(path, root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"CSV file {rel!r} does not exist (looked in {str(path.parent)!r}).") from None
    except OSError as e:
        raise DatasetError(f"CSV file {rel!r} cannot be read: {e}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        problems.append(
            Problem("encoding", rel, f"{rel!r} is not UTF-8; it was read as Latin-1. Save it as UTF-8 to be sure.")
        )
    if not text.strip():
        raise DatasetError(f"CSV file {rel!r} is empty: it needs a header row and one row per image.")
    try:
        return pd.read_csv(io.StringIO(text), **kwargs)
    except (pd.errors.ParserError, ValueError) as e:
        raise DatasetError(f"CSV file {rel!r} cannot be parsed: {e}") from None


def _require_columns(frame: pd.DataFrame, columns: dict[str, str | None], csv_name: str) -> None:
    for role, col in columns.items():
        if col is not None and col not in frame.columns:
            raise DatasetError(
                f"CSV {csv_name!r} has no column {col!r} (train.{role} in the dataset spec); its columns are "
                f"{list(map(str, frame.columns))}. Set train.{role} to one of them."
            )


def _load_folder_layout(spec: DatasetSpec, root: Path, problems: list[Problem]) -> tuple[pd.DataFrame, list[str]]:
    images_dir = root / spec.train.images
    if not images_dir.is_dir():
        raise DatasetError(f"Training image folder {str(images_dir)!r} does not exist (train.images in the spec).")
    # The test folder may sit among the class folders (train.images "." with test/ beside cat/ and dog/).
    test_dir = Path(os.path.normpath(root / spec.test.images)) if spec.test is not None else None
    class_dirs = sorted(d for d in images_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
                        and Path(os.path.normpath(d)) != test_dir)
    for f in sorted(images_dir.iterdir()):
        if f.is_file() and is_image_path(f):
            problems.append(
                Problem("not_image", _rel(f, root), f"{f.name!r} lies directly in the training folder, outside any "
                        "class sub-folder, and was skipped.")
            )
    rows = []
    links = LinkCheck(root, follow=spec.follow_links_outside_root)
    for d in class_dirs:
        if not _is_valid_utf8(d.name):
            problems.append(Problem("odd_filename", _printable(_rel(d, root)),
                                    "Class folder name is not valid UTF-8 and was skipped; rename it."))
            continue
        for p in list_image_files(d, problems, root=root, links=links):
            rows.append({"sample_id": _rel(p, images_dir), "path": str(p), "label": d.name, "group": None})
    return pd.DataFrame(rows, columns=["sample_id", "path", "label", "group"]), []


def _load_csv_layout(spec: DatasetSpec, root: Path, problems: list[Problem]) -> tuple[pd.DataFrame, list[str]]:
    t = spec.train
    csv_path = root / t.csv
    text_cols = [c for c in (t.path_column, t.label_column, t.id_column, t.group_column) if c]
    frame = read_csv_checked(csv_path, problems, root=root, dtype={c: str for c in text_cols}, keep_default_na=True)
    _require_columns(
        frame,
        {"path_column": t.path_column, "label_column": t.label_column, "id_column": t.id_column,
         "group_column": t.group_column},
        t.csv,
    )
    used = set(text_cols)
    if t.metadata_columns is None:
        metadata = [c for c in frame.columns if c not in used]
    else:
        missing = [c for c in t.metadata_columns if c not in frame.columns]
        if missing:
            raise DatasetError(f"CSV {t.csv!r} has no metadata column(s) {missing}; its columns are {list(frame.columns)}.")
        metadata = list(t.metadata_columns)
    clash = [c for c in metadata if c in MANIFEST_COLUMNS]
    if clash:
        raise DatasetError(
            f"CSV {t.csv!r} has metadata column(s) {clash} whose names Fold Studio reserves for the manifest; "
            "rename them in the CSV or leave them out with train.metadata_columns."
        )
    images_dir = root / t.images
    links = LinkCheck(root, follow=spec.follow_links_outside_root)
    keep = []
    paths = []
    for i, (raw_path, label) in enumerate(zip(frame[t.path_column], frame[t.label_column], strict=True)):
        line = i + 2  # header is line 1
        if pd.isna(raw_path) or not str(raw_path).strip():
            problems.append(Problem("missing", f"{t.csv}:{line}", f"Row {line} of {t.csv!r} has an empty {t.path_column!r}; skipped."))
            continue
        if pd.isna(label) or not str(label).strip():
            problems.append(Problem("missing_label", f"{t.csv}:{line}", f"Row {line} of {t.csv!r} ({raw_path}) has no label in {t.label_column!r}; skipped."))
            continue
        p = images_dir / str(raw_path).strip()
        if not _inside(p, root):
            problems.append(Problem("outside_root", str(raw_path), f"Row {line} of {t.csv!r}: path {raw_path!r} points outside "
                                    f"the dataset folder {str(root)!r} and was rejected; copy the image inside it."))
            continue
        if (escaped := links.problem(p, str(raw_path), f"Row {line} of {t.csv!r}: ")) is not None:
            problems.append(escaped)
            continue
        if not is_image_path(p):
            problems.append(Problem("not_image", str(raw_path), f"Row {line} of {t.csv!r}: {raw_path!r} is not an image file; skipped."))
            continue
        if not p.is_file():
            problems.append(Problem("missing", str(raw_path), f"Row {line} of {t.csv!r}: image {raw_path!r} does not exist "
                                    f"under {str(images_dir)!r}; skipped."))
            continue
        keep.append(i)
        paths.append(str(Path(os.path.normpath(p))))
    frame = frame.iloc[keep].reset_index(drop=True)
    out = pd.DataFrame({
        "sample_id": (frame[t.id_column] if t.id_column else frame[t.path_column]).astype(str).str.strip().to_numpy(),
        "path": paths,
        "label": frame[t.label_column].astype(str).str.strip().to_numpy(),
        "group": frame[t.group_column].astype(object).where(frame[t.group_column].notna(), None).to_numpy()
        if t.group_column else None,
    })
    for c in metadata:
        out[c] = frame[c].to_numpy()
    return out, metadata


def _drop_duplicate_ids(manifest: pd.DataFrame, problems: list[Problem], what: str) -> pd.DataFrame:
    dup = manifest["sample_id"].duplicated(keep="first")
    for sid in manifest.loc[dup, "sample_id"].unique()[:50]:
        n = int((manifest["sample_id"] == sid).sum())
        problems.append(Problem("duplicate_id", str(sid), f"{what} sample id {sid!r} appears {n} times; only the first "
                                "row is used. Give each image its own id."))
    return manifest.loc[~dup].reset_index(drop=True)


def read_sample_submission(spec: DatasetSpec, root: str | Path,
                           problems: list[Problem] | None = None) -> pd.DataFrame | None:
    """The spec's sample-submission template (None when it has none), every cell text ("" when empty).

    Raises :class:`DatasetError` naming the file when it cannot be read, or naming the column when
    the id or target column the spec gives is not in it. A non-UTF-8 file is read as Latin-1 and
    noted in ``problems``. The one reader of the template: the manifest's and the submission's.
    """
    s = spec.sample_submission
    if s is None:
        return None
    root = Path(root)
    template = read_csv_checked(root / s.csv, [] if problems is None else problems, root=root, dtype=str,
                                keep_default_na=False)
    for role, col in (("id_column", s.id_column), ("target_column", s.target_column)):
        if col not in template.columns:
            raise DatasetError(
                f"Sample submission {s.csv!r} (in {str(root)!r}) has no {role} {col!r}; its columns are "
                f"{list(template.columns)}. Set sample_submission.{role} in the dataset spec."
            )
    return template


def _load_test(spec: DatasetSpec, root: Path, problems: list[Problem], classes: list[str]) -> pd.DataFrame:
    template = read_sample_submission(spec, root, problems)
    if template is not None:
        s = spec.sample_submission
        targets = {v for v in template[s.target_column] if v != ""}
        unknown = sorted(targets - set(classes))
        # A template full of one placeholder value (often the first class or 0) is normal; only
        # labels that are neither a class nor a class index are worth a word.
        index_like = {str(i) for i in range(len(classes))}
        unknown = [u for u in unknown if u not in index_like]
        for u in unknown[:20]:
            problems.append(Problem("unknown_label", s.csv, f"Sample submission {s.csv!r} has target value {u!r}, which no "
                                    f"training image has as label (classes: {classes[:10]}{'...' if len(classes) > 10 else ''})."))
    if spec.test is None:
        return pd.DataFrame(columns=TEST_COLUMNS)
    test_dir = root / spec.test.images
    if not test_dir.is_dir():
        raise DatasetError(f"Test image folder {str(test_dir)!r} does not exist (test.images in the spec).")
    files = list_image_files(test_dir, problems, root=root,
                             links=LinkCheck(root, follow=spec.follow_links_outside_root))
    rel = [_rel(p, test_dir) for p in files]
    stems = [str(Path(r).with_suffix("")) for r in rel]
    ids = stems
    if template is not None:
        tids = {t for t in template[spec.sample_submission.id_column] if t != ""}
        # The template decides whether ids carry the file extension.
        if len(tids & set(rel)) > len(tids & set(stems)):
            ids = rel
        missing = sorted(tids - set(ids))
        for m in missing[:20]:
            problems.append(Problem("missing_test_image", m, f"Sample submission id {m!r} has no image in "
                                    f"{str(test_dir)!r}; its prediction will be missing."))
    test = pd.DataFrame({"sample_id": ids, "path": [str(p) for p in files]}, columns=TEST_COLUMNS)
    return _drop_duplicate_ids(test, problems, "Test")


def load_dataset(spec: DatasetSpec, root: str | Path, *, spec_path: str | Path | None = None,
                 overrides="file") -> Dataset:
    """Build the manifest for a spec whose relative paths start at ``root``.

    ``overrides``: label overrides to apply (``"file"``: the spec's overrides file, if any; None: none; a run's
    record) — see :func:`engine.data.overrides.resolve_overrides`.
    """
    root = Path(os.path.abspath(root))
    problems: list[Problem] = []
    if spec.layout == "folder":
        manifest, metadata = _load_folder_layout(spec, root, problems)
    else:
        manifest, metadata = _load_csv_layout(spec, root, problems)
    manifest = _drop_duplicate_ids(manifest, problems, "Training")
    if manifest.empty:
        where = spec.train.csv if spec.layout == "csv" else spec.train.images
        raise DatasetError(
            f"Dataset {spec.name!r} has no usable training image (looked in {where!r} under {str(root)!r}); "
            + ("first problems: " + "; ".join(p.message for p in problems[:3]) if problems else
               "check the spec's train.images folder and layout.")
        )
    classes = natural_class_order(manifest["label"])
    manifest.insert(3, "label_index", manifest["label"].map({c: i for i, c in enumerate(classes)}).astype("int64"))
    problems += class_problems(manifest["label"].value_counts())
    manifest["group"] = manifest["group"].astype(object)
    manifest, applied = apply_dataset_overrides(manifest, classes, overrides, spec_path)
    test = _load_test(spec, root, problems, classes)
    return Dataset(
        spec=spec, root=root, spec_path=Path(spec_path) if spec_path else None, manifest=manifest, classes=classes,
        test_manifest=test, metadata_columns=metadata, problems=problems, overrides=applied,
    )


def open_dataset(path: str | Path, *, write_detected_spec: bool = True, overrides="file") -> Dataset:
    """Open a dataset from a spec YAML or a folder (reading its ``dataset.yaml`` or detecting the layout).

    ``overrides``: ``"file"`` (default) applies the label overrides beside the spec; None opens the dataset as
    its files say; a run's recorded ``label_overrides`` re-applies what that run trained with.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{str(path)!r} does not exist; give a dataset folder or its spec YAML.")
    if path.is_file():
        if path.suffix.lower() not in {".yaml", ".yml"}:
            raise DatasetError(f"{str(path)!r} is not a dataset spec (a .yaml file) nor a folder.")
        spec = read_spec(path)
        return load_dataset(spec, path.parent, spec_path=path, overrides=overrides)
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(f"Folder {str(path)!r} cannot be read (permission denied).")
    spec_file = path / SPEC_FILENAME
    if spec_file.is_file():
        return load_dataset(read_spec(spec_file), path, spec_path=spec_file, overrides=overrides)
    from engine.data.detect import detect_spec

    spec = detect_spec(path)
    dataset = load_dataset(spec, path)
    if write_detected_spec and os.access(path, os.W_OK):
        write_spec(spec, spec_file)
        dataset.spec_path = spec_file
    return dataset
