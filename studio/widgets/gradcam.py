"""Widget groups of the Grad-CAM page: ``*_ui()`` functions return the user's choices; ``cam_grid`` draws.

Session-state keys: ``studio.state.CAM_*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from engine.errors import EngineError
from engine.explain import SAMPLE_SOURCES, CamResult, default_target_layer, get_cam_method, list_cam_methods
from studio import cam_loaders, state
from studio.cam_loaders import FoldModel, ModelChoices
from studio.figures.cam import TILE_SIDE, cam_tile, colorbar, enlarge, prediction_caption

TRAIN_PAGE = Path(__file__).resolve().parents[2] / "pages" / "train.py"
UPLOAD = "upload"
AUTO_LAYER = "(automatic)"
SOURCE_LABELS = {"misclassified": "Misclassified", "least_confident": "Least confident",
                 "random_per_class": "Random per class", UPLOAD: "Upload an image"}
SUBSET_LABELS = {"holdout": "Holdout (no fold model trained on it)", "oof": "Out-of-fold (validation images)"}
TARGET_LABELS = {"predicted": "Predicted class", "true": "True class", "class": "A class I choose"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"]
METHODS_HELP = "\n".join(f"- **{m.label}**: {m.description}" for m in map(get_cam_method, list_cam_methods()))


@dataclass(frozen=True)
class CamSettings:
    source: str
    subset: str | None
    count: int
    seed: int
    method: str
    target: str
    target_class: int
    layer: str | None
    alpha: float


@dataclass
class ImagesToExplain:
    images: list[np.ndarray]
    token: tuple
    names: list[str]  # a caption per image: sample id or file name
    labels: list[int] | None  # true class per image, None for an upload


def run_notes(choices: ModelChoices) -> None:
    """The runs that offer fewer folds than they have (training, failed, cancelled, missing weights)."""
    for level, message in choices.notes:
        {"info": st.info, "warning": st.warning, "error": st.error}[level](message)


def require_models(choices: ModelChoices) -> None:
    """Stop the page with what to do next when no fold model can be explained."""
    if choices.models:
        return
    if choices.runs == 0:
        st.info("**No runs yet.** Train a model on the **Train** page; its fold models appear here as soon as "
                "the first fold finishes.", icon=":material/model_training:")
        if TRAIN_PAGE.is_file():  # st.page_link refuses a page the menu does not list
            st.page_link(f"../pages/{TRAIN_PAGE.name}", label="Go to the Train page", icon=":material/model_training:")
    else:
        st.info(f"{choices.runs} run(s) in the workspace, but none has a finished fold to explain yet (see above). "
                "Watch them on the **Train** page.", icon=":material/hourglass_top:")
    st.stop()


def _default_models(models: list[FoldModel]) -> list[str]:
    """Fold 0 of the two newest runs (e.g. with vs without label smoothing), else folds 0 and 1 of the one run."""
    first_fold: dict[str, FoldModel] = {}
    for m in models:  # newest run first, folds ascending
        first_fold.setdefault(m.run_dir, m)
    runs = list(first_fold.values())
    picked = sorted(runs[:2], key=lambda m: m.run_name) if len(runs) >= 2 else models[:2]
    return [m.label for m in picked]


def models_ui(choices: ModelChoices) -> list[FoldModel]:
    by_label = {m.label: m for m in choices.models}
    kept = [label for label in st.session_state.get(state.CAM_MODELS, []) if label in by_label]
    st.session_state[state.CAM_MODELS] = kept or _default_models(choices.models)
    picked = st.multiselect(
        "Models (run · fold), side by side", list(by_label), key=state.CAM_MODELS, max_selections=4,
        help="Pick fold models to compare on the same images: e.g. two runs that differ only in label smoothing, "
             "or fold 0 vs fold 1 of one run. The first one chooses the images (its mistakes, its least confident "
             "calls).")
    return [by_label[label] for label in picked]


def settings_ui(reference: FoldModel, classes: list[str]) -> tuple[CamSettings, object | None]:
    """The image source, CAM method, target and layer; returns the settings and the uploaded file (or None)."""
    source, subset, count, upload = _source_ui(reference)
    m1, m2, m3 = st.columns([1.1, 1.2, 1])
    with m1:
        method = st.selectbox("CAM method", list_cam_methods(), format_func=lambda k: get_cam_method(k).label,
                              key=state.CAM_METHOD, help=METHODS_HELP)
    with m2:
        target, target_class = _target_ui(source, method, classes)
    with m3:
        layer, alpha = _layer_ui(reference)
    seed = int(st.session_state[state.CAM_SEED])
    return CamSettings(source, subset, count, seed, method, target, target_class, layer, alpha), upload


def _source_ui(reference: FoldModel) -> tuple[str, str | None, int, object | None]:
    st.session_state.setdefault(state.CAM_SEED, 0)
    c1, c2, c3 = st.columns([1.1, 1.2, 1])
    with c1:
        source = st.selectbox(
            "Images", [*SAMPLE_SOURCES, UPLOAD], format_func=SOURCE_LABELS.get, key=state.CAM_SOURCE,
            help="Misclassified: the first model's mistakes, most confident first. Least confident: its lowest top "
                 "probability. Random per class: a few of each class.")
    upload = subset = None
    with c2:
        if source == UPLOAD:
            upload = st.file_uploader("Image", type=UPLOAD_TYPES, key=state.CAM_UPLOAD)
        elif subsets := cam_loaders.subsets_of(reference):
            subset = st.selectbox("From", subsets, format_func=SUBSET_LABELS.get, key=state.CAM_SUBSET)
    with c3:
        count = 1 if source == UPLOAD else st.slider("How many images", 1, 12, 6, key=state.CAM_COUNT)
        if source == "random_per_class" and st.button("New draw", icon=":material/casino:", key="cam_redraw"):
            st.session_state[state.CAM_SEED] += 1
    return source, subset, int(count), upload


def _target_ui(source: str, method: str, classes: list[str]) -> tuple[str, int]:
    targets = [t for t in TARGET_LABELS if not (t == "true" and source == UPLOAD)]  # an upload has no true class
    if st.session_state.get(state.CAM_TARGET) not in targets:
        st.session_state[state.CAM_TARGET] = "predicted"
    target = st.radio("Show the evidence for", targets, format_func=TARGET_LABELS.get, key=state.CAM_TARGET,
                      horizontal=True)
    target_class = 0
    if target == "class":
        target_class = classes.index(st.selectbox("Class", classes, key=state.CAM_TARGET_CLASS))
    if not get_cam_method(method).uses_target:
        st.caption(f"{get_cam_method(method).label} shows what the layer responds to most, whatever the class.")
    return target, target_class


def _layer_ui(reference: FoldModel) -> tuple[str | None, float]:
    try:
        layers = cam_loaders.target_layers(reference)
    except EngineError as e:
        st.caption(f"Layers cannot be listed: {e}")
        layers = []
    auto = f"{AUTO_LAYER} {default_target_layer(layers).label}" if layers else AUTO_LAYER
    options = [AUTO_LAYER, *[t.name for t in reversed(layers)]]
    labels = {AUTO_LAYER: auto, **{t.name: t.label for t in layers}}
    if st.session_state.get(state.CAM_LAYER) not in options:
        st.session_state[state.CAM_LAYER] = AUTO_LAYER
    layer = st.selectbox("Layer", options, format_func=labels.get, key=state.CAM_LAYER,
                         help="The feature map the CAM reads. Deeper layers know more about the class but have "
                              "coarser maps; the automatic choice is the deepest with at least 4x4 cells.")
    alpha = st.slider("Heat-map opacity", 0.2, 0.9, 0.5, 0.05, key=state.CAM_ALPHA)
    return (None if layer == AUTO_LAYER else layer), float(alpha)


def images_ui(settings: CamSettings, reference: FoldModel, upload) -> ImagesToExplain | None:
    """The images chosen by the settings; None (with a message) when there are none to show."""
    if settings.source == UPLOAD:
        if upload is None:
            st.info("Upload an image (PNG, JPEG, ...) to see where each model looks in it.",
                    icon=":material/upload:")
            return None
        data = upload.getvalue()
        image = cam_loaders.decode_upload(data, upload.name)
        return ImagesToExplain([image], cam_loaders.images_token(upload=data), [upload.name], None)
    if settings.subset is None:
        st.warning(f"Run **{reference.run_name}** has no labelled predictions (holdout or out-of-fold) to pick "
                   "images from; upload an image instead.")
        return None
    rows = cam_loaders.pick_samples(reference, settings.subset, settings.source, settings.count, settings.seed)
    if rows.empty:
        what = "no misclassified image" if settings.source == "misclassified" else "no image"
        st.info(f"**{reference.label}** has {what} in this subset. Pick another source or subset.")
        return None
    st.caption(f"{len(rows)} image(s) chosen by the predictions of **{reference.label}** on the "
               f"{'holdout' if settings.subset == 'holdout' else 'out-of-fold images'}.")
    paths = rows["path"].tolist()
    return ImagesToExplain(cam_loaders.load_images(paths), cam_loaders.images_token(paths),
                           rows["sample_id"].tolist(), rows["label_index"].astype(int).tolist())


def _targets(settings: CamSettings, images: ImagesToExplain) -> int | tuple[int, ...] | None:
    if settings.target == "true" and images.labels is not None:
        return tuple(images.labels)
    if settings.target == "class":
        return settings.target_class
    return None


def cam_grid(models: list[FoldModel], images: ImagesToExplain, settings: CamSettings, classes: list[str]) -> None:
    """One row per image: the image, then each model's heat map with its prediction and confidence."""
    results: dict[str, CamResult | EngineError] = {}
    model_classes: dict[str, list[str]] = {}
    with st.spinner(f"Computing {get_cam_method(settings.method).label} for {len(images.images)} image(s) × "
                    f"{len(models)} model(s)..."):
        for m in models:
            try:
                model_classes[m.label] = cam_loaders.fold_model(m)[1]["classes"]
                results[m.label] = cam_loaders.explain(m, images.images, images.token, method=settings.method,
                                                       targets=_targets(settings, images), layer=settings.layer)
            except EngineError as e:
                results[m.label] = e
    widths = [1] * (len(models) + 1)
    st.image(colorbar(), width=320, caption="Heat map: blue = no evidence, red = the strongest evidence for the "
                                            "class shown (each map is scaled to its own maximum).")
    header = st.columns(widths)
    header[0].markdown("**Image**")
    for col, m in zip(header[1:], models, strict=True):
        res = results[m.label]
        col.markdown(f"**{m.label}**")
        col.caption(f"reads layer `{res.layer.name}` ({res.layer.grid[0]}×{res.layer.grid[1]} map)"
                    if not isinstance(res, EngineError) else "")
    for i, image in enumerate(images.images):
        cols = st.columns(widths)
        cols[0].image(enlarge(image, TILE_SIDE))
        true = images.labels[i] if images.labels is not None else None
        cols[0].caption(f"`{images.names[i]}`" + (f" · true **{classes[true]}**" if true is not None else ""))
        for col, m in zip(cols[1:], models, strict=True):
            res = results[m.label]
            if isinstance(res, EngineError):
                if i == 0:
                    col.error(str(res))
                continue
            col.image(cam_tile(image, res.cams[i], alpha=settings.alpha))
            col.markdown(prediction_caption(model_classes[m.label], int(res.predicted[i]),
                                            float(res.confidence[i]), true=true, target=int(res.targets[i]),
                                            empty=bool(res.cams[i].max() <= 0.0)))
