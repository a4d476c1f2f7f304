"""Augmentation lab: build an albumentations pipeline, preview it on the open dataset, save it for training."""

import streamlit as st

from engine.augment import preview_pipeline
from engine.errors import EngineError
from studio import state
from studio.widgets import augment as aug

st.title("Augmentation lab")
st.caption(
    "Build the augmentation pipeline training applies to each image, and watch what it does to your images. "
    "It is stored in albumentations' own format: what you preview is exactly what training runs."
)
aug.init_state()

build, look = st.columns([5, 7], gap="large")
with build:
    st.subheader("Pipeline")
    _, image_size = aug.start_ui()
    pipeline = aug.steps_ui()
    aug.add_ui()

with look:
    st.subheader("Preview")
    dataset = aug.open_dataset_or_none()
    choices = aug.preview_controls_ui()
    if dataset is None:
        st.info("Open a dataset in the sidebar to preview the pipeline on its images.", icon=":material/folder_open:")
        images, captions = [], []
    else:
        picks = aug.sample_paths(dataset, max(choices.images, 3), choices.sample_seed)
        images, captions = aug.load_images(picks)
        try:
            rows = preview_pipeline(pipeline, images[: choices.images], draws=choices.draws, seed=choices.seed)
        except EngineError as e:
            st.error(str(e), icon=":material/error:")
        else:
            st.caption(
                f"Seed {choices.seed}: the same seed shows the same draws. Each caption names the transforms that "
                "fired on that draw; *Values each draw applied* lists the values albumentations drew."
            )
            aug.preview_grid(rows, captions[: choices.images], one_image_mode=choices.one_image_mode)

st.divider()
use, raw, tta = st.tabs(aug.TABS, key=state.AUG_TAB, on_change="rerun")
if use.open:
    with use:
        aug.training_ui()
        st.divider()
        aug.import_export_ui()
if raw.open:
    with raw:
        aug.yaml_ui()
if tta.open:
    with tta:
        st.caption(
            "At prediction time each image is also predicted in these views (flips, rotations) and the outputs are "
            f"averaged; the Train page picks which. Shown at the image size ({image_size} px), as the model sees them."
        )
        if images:
            aug.tta_ui(images[:3], captions[:3], image_size)
        else:
            st.info("Open a dataset in the sidebar to see the test-time views of its images.")
