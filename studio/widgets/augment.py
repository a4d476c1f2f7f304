"""Widget groups of the Augmentation lab. Each ``*_ui()`` draws one group and returns the user's choices.

The pipeline under edit is albumentations' serialized dict in ``st.session_state[state.AUG_SPEC]``
(always one albumentations can build). Step widgets are keyed by ``state.AUG_REV``: anything that
changes the pipeline from outside the step widgets (a preset, add / remove / move, YAML, an import)
moves the revision on, so the widgets are drawn afresh from the new spec. Engine errors are shown
with ``st.error`` next to what caused them; the last valid pipeline stays in use.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from engine.augment import (
    CATALOGUE,
    CATEGORIES,
    TTA_VIEWS,
    Pipeline,
    build_transform,
    describe_params,
    dump_pipeline,
    load_pipeline_file,
    parse_pipeline,
    preset,
    save_pipeline_file,
)
from engine.augment.catalogue import ParamSpec
from engine.data import Dataset, load_rgb
from engine.errors import EngineError
from studio import state
from studio.loaders import encode_thumbnail, load_dataset_cached, mtime

# preset -> (label, what it holds)
START_CHOICES = {
    "light": ("Light", "random resized crop + horizontal flip"),
    "medium": ("Medium", "light + shift / zoom / rotate, brightness / contrast / hue, cutout"),
    "heavy": ("Heavy", "medium, stronger, + vertical flip, blur or noise, grey, more cutout"),
    "none": ("None", "resize only"),
    "empty": ("Empty", "no transform at all"),
}
TABS = ("Use for training · export", "Raw YAML", "Test-time views")
MODES = ("Grid: images × draws", "One image, many draws")
PREVIEW_SIDE = 224  # pixels of a preview image in the browser
MAX_PREVIEW_SIDE = 1024  # dataset images are decoded at most this large for the preview


def current_file() -> Path:
    """Where "Use for training" saves the pipeline; the Train page reads it from there."""
    return state.workspace() / "augment" / "current.yaml"


# --- state ---------------------------------------------------------------------------------------------
def init_state() -> None:
    """First visit: the pipeline in use for training if there is one, else the light preset."""
    ss = st.session_state
    if state.AUG_IMAGE_SIZE not in ss:  # the size the Train form defaults to (model and images)
        from studio.widgets.train_form import session_default_size

        ss[state.AUG_IMAGE_SIZE] = session_default_size(open_dataset_or_none())
    if state.AUG_SPEC not in ss:
        try:
            ss[state.AUG_SPEC] = load_pipeline_file(current_file()) if current_file().is_file() else None
        except EngineError as e:
            _say(
                "pipeline", "error", f"The saved training pipeline could not be read, so the light preset is shown. {e}"
            )
            ss[state.AUG_SPEC] = None
        if ss[state.AUG_SPEC] is None:
            ss[state.AUG_SPEC] = Pipeline.from_spec(preset("light", ss[state.AUG_IMAGE_SIZE])).to_spec()
    for key, value in (
        (state.AUG_REV, 0),
        (state.AUG_START, "light"),
        (state.AUG_MODE, MODES[0]),
        (state.AUG_IMAGES, 3),
        (state.AUG_DRAWS, 4),
        (state.AUG_SEED, 0),
        (state.AUG_SAMPLE_SEED, 0),
        (state.AUG_MANY_DRAWS, 12),
        (state.AUG_TTA_VIEWS, list(TTA_VIEWS)),
        (state.AUG_MESSAGE, None),
        (state.AUG_TAB, TABS[0]),
    ):
        ss.setdefault(key, value)


def current_spec() -> dict[str, Any]:
    return st.session_state[state.AUG_SPEC]


def current_pipeline() -> Pipeline:
    return Pipeline.from_spec(current_spec())


def _replace(pipeline: Pipeline) -> None:
    """Make ``pipeline`` the one under edit and redraw the step widgets from it (callbacks only)."""
    st.session_state[state.AUG_SPEC] = pipeline.to_spec()
    st.session_state[state.AUG_REV] += 1


def _say(area: str, kind: str, text: str) -> None:
    st.session_state[state.AUG_MESSAGE] = (area, kind, text)


def _guarded(area: str, action, *args) -> None:
    """Run an edit callback; an engine error becomes the message shown in ``area`` (see :func:`message_ui`)."""
    try:
        action(*args)
    except EngineError as e:
        _say(area, "error", f"{e} Nothing changed: the pipeline in use is the one shown above.")


def message_ui(area: str) -> None:
    """The outcome of the last action of ``area`` (pipeline, yaml, import, training), shown once, where it happened."""
    found = st.session_state.get(state.AUG_MESSAGE)
    if found and found[0] == area:
        _, kind, text = found
        if kind == "error":
            st.error(text, icon=":material/error:")
        else:
            st.success(text, icon=":material/check_circle:")
        st.session_state[state.AUG_MESSAGE] = None


# --- start from a preset --------------------------------------------------------------------------------
def start_ui() -> tuple[str, int]:
    """Preset picker and the training image size; returns (choice, image size)."""
    row = st.container(horizontal=True, vertical_alignment="bottom")
    choice = row.selectbox(
        "Start from", list(START_CHOICES), key=state.AUG_START, format_func=lambda c: START_CHOICES[c][0]
    )
    size = row.number_input(
        "Image size",
        min_value=16,
        max_value=2048,
        step=16,
        key=state.AUG_IMAGE_SIZE,
        help="Side of the square images training sees: presets and new crops / resizes use it.",
        width=120,
    )
    row.button(
        "Load",
        on_click=_guarded,
        args=("pipeline", _load_start),
        icon=":material/restart_alt:",
        help="Replace the pipeline below with this starting point.",
    )
    st.caption(f"{START_CHOICES[choice][0]}: {START_CHOICES[choice][1]}.")
    message_ui("pipeline")
    return choice, int(size)


def _load_start() -> None:
    choice, size = st.session_state[state.AUG_START], int(st.session_state[state.AUG_IMAGE_SIZE])
    _replace(Pipeline() if choice == "empty" else Pipeline.from_spec(preset(choice, size)))
    _say("pipeline", "success", f"Loaded the {START_CHOICES[choice][0].lower()} starting point.")


# --- steps ------------------------------------------------------------------------------------------------
def steps_ui() -> Pipeline:
    """One bordered box per step (move, remove, probability, parameters); returns the pipeline now in use."""
    pipeline = current_pipeline()
    if not pipeline.steps:
        st.info(
            "The pipeline is empty: training sees each image only resized to the model's input. "
            "Add a transform below or load a preset.",
            icon=":material/info:",
        )
    edited = pipeline
    for i, step in enumerate(pipeline.steps):
        with st.container(border=True):
            p, params = _step_ui(i, step, len(pipeline.steps))
            changes = {k: v for k, v in params.items() if not _same(v, step.params.get(k))}
            if changes or not _same(p, step.p):
                candidate = edited.with_step(i, p=p, **changes)
                try:
                    build_transform(candidate.steps[i].to_dict(), where=f"Step {i + 1}")
                except EngineError as e:
                    st.error(f"{e} The previous value stays in use.", icon=":material/error:")
                    continue
                edited = candidate
    if edited != pipeline:
        try:
            st.session_state[state.AUG_SPEC] = edited.to_spec()
        except EngineError as e:
            st.error(str(e), icon=":material/error:")
            return pipeline
    return edited


def _key(i: int, name: str) -> str:
    return f"{state.AUG_STEP_PREFIX}{st.session_state[state.AUG_REV]}_{i}_{name}"


def _step_ui(i: int, step, count: int) -> tuple[float, dict[str, Any]]:
    entry = CATALOGUE.get(step.name)
    head, up, down, remove = st.columns([8, 1, 1, 1], vertical_alignment="center")
    head.markdown(f"**{i + 1}. {step.name}**" + (f"  \n{entry.description}" if entry else ""))
    up.button(
        "",
        key=_key(i, "up"),
        icon=":material/arrow_upward:",
        disabled=i == 0,
        help="Move up",
        on_click=_guarded,
        args=("pipeline", _move, i, -1),
    )
    down.button(
        "",
        key=_key(i, "down"),
        icon=":material/arrow_downward:",
        disabled=i == count - 1,
        help="Move down",
        on_click=_guarded,
        args=("pipeline", _move, i, 1),
    )
    remove.button(
        "",
        key=_key(i, "remove"),
        icon=":material/delete:",
        help="Remove this step",
        on_click=_guarded,
        args=("pipeline", _remove, i),
    )
    p = st.slider(
        "Probability",
        0.0,
        1.0,
        float(step.p),
        0.05,
        key=_key(i, "p"),
        help="Chance that this transform runs on an image.",
    )
    values: dict[str, Any] = {}
    if entry is None:
        st.caption("Not in the catalogue: edit its parameters in the *Raw YAML* tab below the preview.")
        if step.params:
            with st.expander("Parameters"):
                st.json(step.params, expanded=True)
        return p, values
    for spec in entry.params:
        stored = step.params.get(spec.name)
        shown = spec.coerce(stored)
        if shown is None:
            st.caption(
                f"`{spec.name}` = `{json.dumps(stored)}` — outside this editor's range; edit it in the raw YAML."
            )
            continue
        values[spec.name] = param_widget(spec, shown, _key(i, spec.name))
    return p, values


def param_widget(spec: ParamSpec, value: Any, key: str) -> Any:
    """The widget fitting a catalogue parameter; returns its value (lists for pairs, as specs hold them)."""
    label = spec.name.replace("_", " ")
    kwargs = {"key": key, "help": spec.help or None}
    if spec.kind == "bool":
        return st.checkbox(label, value=value, **kwargs)
    if spec.kind == "choice":
        return st.selectbox(label, spec.choices, index=spec.choices.index(value), format_func=spec.label_of, **kwargs)
    if spec.kind in ("float", "int"):
        cast = float if spec.kind == "float" else int
        if spec.kind == "int" and spec.max - spec.min > 256:
            return st.number_input(label, cast(spec.min), cast(spec.max), value, cast(spec.step), **kwargs)
        return st.slider(label, cast(spec.min), cast(spec.max), value, cast(spec.step), **kwargs)
    if spec.kind in ("float_range", "int_range"):
        cast = float if spec.kind == "float_range" else int
        low, high = st.slider(label, cast(spec.min), cast(spec.max), tuple(value), cast(spec.step), **kwargs)
        return [low, high]
    parts = ("height", "width") if spec.kind == "int_pair" else ("R", "G", "B")
    cast = int if spec.kind == "int_pair" else float
    out = []
    for col, part, v in zip(st.columns(len(parts)), parts, value, strict=True):
        out.append(
            col.number_input(
                f"{label} ({part})",
                cast(spec.min),
                cast(spec.max),
                v,
                cast(spec.step),
                key=f"{key}_{part}",
                help=spec.help or None,
            )
        )
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal up to float noise (albumentations stores some ranges as 1 + x)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, dict) and set(b) == {"x", "y"}:
        return _same(a, b["x"]) and _same(a, b["y"])
    return a == b


def _move(i: int, offset: int) -> None:
    _replace(current_pipeline().moved(i, offset))


def _remove(i: int) -> None:
    _replace(current_pipeline().removed(i))


def add_ui() -> str:
    """Catalogue picker grouped by category plus "Add"; returns the chosen transform name."""
    names = [n for c in CATEGORIES for n in CATALOGUE if CATALOGUE[n].category == c]
    row = st.container(horizontal=True, vertical_alignment="bottom")
    name = row.selectbox(
        "Add a transform",
        names,
        key=state.AUG_ADD,
        format_func=lambda n: f"{CATALOGUE[n].category.capitalize()} · {n} — {CATALOGUE[n].description}",
        help="The catalogue holds the transforms competitors use most; anything else goes in the raw YAML.",
    )
    row.button("Add", icon=":material/add:", on_click=_guarded, args=("pipeline", _add))
    return name


def _add() -> None:
    name = st.session_state[state.AUG_ADD]
    _replace(current_pipeline().added(name, image_size=int(st.session_state[state.AUG_IMAGE_SIZE])))


# --- YAML, import, export, use for training ---------------------------------------------------------------
def _spec_hash(spec: dict) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def yaml_ui() -> None:
    """The raw YAML of the pipeline, editable; "Apply" validates it with albumentations first."""
    key = state.AUG_YAML_PREFIX + _spec_hash(current_spec())
    st.text_area(
        "Pipeline as albumentations YAML (JSON works too)",
        value=dump_pipeline(current_spec(), "yaml"),
        key=key,
        height=320,
        help="Edit anything albumentations supports (OneOf, transforms outside the catalogue...) or "
        "paste a pipeline saved with A.save, then press Apply.",
    )
    st.button("Apply", icon=":material/check:", on_click=_guarded, args=("yaml", _apply_text, key))
    message_ui("yaml")


def _apply_text(key: str) -> None:
    _replace(parse_pipeline(st.session_state.get(key) or "", source="YAML in the editor"))
    _say("yaml", "success", "The YAML is now the pipeline under edit.")


def import_export_ui() -> None:
    """Import a pipeline file; download the current one as YAML or JSON (exactly A.to_dict's dict)."""
    st.file_uploader(
        "Import an albumentations pipeline (YAML or JSON, as written by A.save)",
        type=["yaml", "yml", "json"],
        key=state.AUG_UPLOAD,
        on_change=_guarded,
        args=("import", _import_upload),
    )
    message_ui("import")
    spec = current_spec()
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download YAML",
        dump_pipeline(spec, "yaml"),
        "augment.yaml",
        "application/x-yaml",
        icon=":material/download:",
        width="stretch",
    )
    c2.download_button(
        "Download JSON",
        dump_pipeline(spec, "json"),
        "augment.json",
        "application/json",
        icon=":material/download:",
        width="stretch",
    )
    st.caption('Load it in your own code with `albumentations.load(path, data_format="yaml")`.')


def _import_upload() -> None:
    uploaded = st.session_state.get(state.AUG_UPLOAD)
    if uploaded is None:
        return
    try:
        text = uploaded.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        _say("import", "error", f"The file {uploaded.name!r} is not UTF-8 text; import a YAML or JSON pipeline.")
        return
    _replace(parse_pipeline(text, source=f"imported file {uploaded.name!r}"))
    _say("import", "success", f"Imported {uploaded.name}: it is now the pipeline under edit.")


def training_ui() -> None:
    """Whether the pipeline under edit is the one training uses, and the button that makes it so."""
    target = current_file()
    try:
        in_use = load_pipeline_file(target) if target.is_file() else None
    except EngineError:
        in_use = None
    if in_use == current_spec():
        st.success(
            f"Training uses this pipeline: new runs on the Train page read `{target}`.", icon=":material/check_circle:"
        )
    else:
        st.caption(
            "Training "
            + ("uses another pipeline" if target.is_file() else "has no pipeline yet")
            + f": press the button to save this one as `{target}`; the Train page picks it up from there."
        )
    st.button(
        "Use for training",
        type="primary",
        icon=":material/model_training:",
        on_click=_guarded,
        args=("training", _use_for_training),
    )
    message_ui("training")


def _use_for_training() -> None:
    save_pipeline_file(current_spec(), current_file())  # the status line above the button says it worked


# --- preview ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewChoices:
    images: int
    draws: int
    seed: int
    sample_seed: int
    one_image_mode: bool


def open_dataset_or_none() -> Dataset | None:
    """The open dataset, or None when there is none or it cannot be read (the sidebar says why)."""
    path = state.dataset_path()
    try:
        return load_dataset_cached(path) if path else None
    except EngineError:
        return None


def preview_controls_ui() -> PreviewChoices:
    """Mode, grid size, seed (with "New seed") and "Other images"; returns the choices."""
    ss = st.session_state
    mode = st.segmented_control("Preview mode", MODES, key=state.AUG_MODE, label_visibility="collapsed") or MODES[0]
    many = mode == MODES[1]
    c1, c2, c3 = st.columns(3)
    if many:
        c1.number_input("Draws", 2, 24, key=state.AUG_MANY_DRAWS, step=1, help="Random augmentations of the image.")
    else:
        c1.number_input("Images", 1, 8, key=state.AUG_IMAGES, step=1, help="Dataset images, one class after another.")
        c2.number_input("Draws", 1, 8, key=state.AUG_DRAWS, step=1, help="Random augmentations per image.")
    (c2 if many else c3).number_input(
        "Seed",
        0,
        2**31 - 1,
        key=state.AUG_SEED,
        step=1,
        help="The same seed reproduces the same preview; change it to see other draws.",
    )
    with st.container(horizontal=True):
        st.button("New seed", icon=":material/casino:", on_click=_new_seed, help="Draw again with a random seed.")
        st.button(
            "Other images",
            icon=":material/shuffle:",
            on_click=_other_images,
            help="Preview other images of the dataset.",
        )
    return PreviewChoices(
        images=1 if many else int(ss[state.AUG_IMAGES]),
        draws=int(ss[state.AUG_MANY_DRAWS] if many else ss[state.AUG_DRAWS]),
        seed=int(ss[state.AUG_SEED]),
        sample_seed=int(ss[state.AUG_SAMPLE_SEED]),
        one_image_mode=many,
    )


def _new_seed() -> None:
    st.session_state[state.AUG_SEED] = random.randrange(2**31 - 1)


def _other_images() -> None:
    st.session_state[state.AUG_SAMPLE_SEED] += 1


def sample_paths(dataset: Dataset, n: int, sample_seed: int) -> list[tuple[str, str]]:
    """``n`` (path, label) of training images, one class after another, picked by ``sample_seed``."""
    manifest = dataset.manifest
    by_class = [rows for rows in manifest.groupby("label", sort=True).indices.values() if len(rows)]
    if not by_class:
        return []
    rng = np.random.default_rng(sample_seed)
    order = rng.permutation(len(by_class))
    picks = []
    for k in range(min(n, len(manifest))):
        row = manifest.iloc[int(rng.choice(by_class[order[k % len(by_class)]]))]
        picks.append((str(row["path"]), str(row["label"])))
    return picks


@st.cache_data(max_entries=32, show_spinner=False)  # up to 1024 px images: ~3 MB each
def _decoded(path: str, mtime: float) -> np.ndarray:
    return load_rgb(path, max_side=MAX_PREVIEW_SIDE)


def load_images(picks: list[tuple[str, str]]) -> tuple[list[np.ndarray], list[str]]:
    """Decoded images and their captions; an unreadable image is skipped with a warning."""
    images, captions = [], []
    for path, label in picks:
        try:
            images.append(_decoded(path, mtime(path)))
        except EngineError as e:
            st.warning(str(e), icon=":material/broken_image:")
            continue
        captions.append(f"original · class {label} · {Path(path).name}")
    return images, captions


def _show(col, image: np.ndarray, caption: str) -> None:
    col.image(encode_thumbnail(image, PREVIEW_SIDE), caption=caption, width="stretch")


def _breakable(name: str) -> str:
    """'RandomResizedCrop' with invisible break points between its words, so narrow captions wrap cleanly."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "\u200b", name)


def draw_caption(k: int, draw) -> str:
    names = ", ".join(_breakable(name) for name, _ in draw.applied)
    return f"draw {k + 1}: {names or 'nothing fired'}"


def preview_grid(rows, captions: list[str], *, one_image_mode: bool) -> None:
    """Original beside its draws; under each row, a table of what each draw applied (albumentations' values)."""
    per_row = 6 if one_image_mode else None
    for row, caption in zip(rows, captions, strict=True):
        draws = list(row.draws)
        cells = [(row.original, caption)] + [(d.image, draw_caption(k, d)) for k, d in enumerate(draws)]
        width = per_row or len(cells)
        for start in range(0, len(cells), width):
            for col, (image, text) in zip(st.columns(width), cells[start : start + width], strict=False):
                _show(col, image, text)
        if any(d.rescaled for d in draws):
            st.caption("The pipeline outputs floats (Normalize): the draws are shown stretched to 0-255.")
        with st.expander("Values each draw applied"):
            table = [
                {"draw": k + 1, "transform": name, "values": describe_params(params) or "-"}
                for k, d in enumerate(draws)
                for name, params in (d.applied or [("nothing fired", {})])
            ]
            st.dataframe(table, hide_index=True, width="stretch")


def tta_ui(images: list[np.ndarray], captions: list[str], image_size: int) -> None:
    """Each test-time view of a few images, as prediction sees them (resized to the image size)."""
    from engine.augment import tta_preview

    views = st.multiselect(
        "Views",
        list(TTA_VIEWS),
        key=state.AUG_TTA_VIEWS,
        help="Prediction averages the model's output over the views a run asks for.",
    )
    if not views:
        st.info("Pick at least one view.")
        return
    grid = tta_preview(images, views, image_size=image_size)
    for shown_views, caption in zip(grid, captions, strict=True):
        st.caption(caption.removeprefix("original · "))
        for col, view, img in zip(st.columns(len(views)), views, shown_views, strict=True):
            _show(col, img, f"{view}: {TTA_VIEWS[view]}")
