"""Grad-CAM page: where in an image each fold model found its evidence, several models side by side.

Thin: the fold models on offer, the cached models and CAMs come from studio.cam_loaders (engine.explain
underneath); the widget groups and the grid are in studio.widgets.gradcam.
"""

import streamlit as st

from engine.errors import EngineError
from studio import cam_loaders, state
from studio.widgets import gradcam as ui

st.title("Grad-CAM")
st.caption("Class activation maps: the parts of the image that pushed a model towards a class (red = strong "
           "evidence). Compare fold models — or runs with and without label smoothing — on the same images.")

choices = cam_loaders.model_choices(state.workspace())
ui.run_notes(choices)
ui.require_models(choices)
models = ui.models_ui(choices)
if not models:
    st.info("Pick at least one model above.", icon=":material/touch_app:")
    st.stop()

try:
    classes = cam_loaders.fold_model(models[0])[1]["classes"]
    settings, upload = ui.settings_ui(models[0], classes)
    if settings.subset == "oof" and len({m.fold for m in models}) > 1:
        st.caption(":orange[Out-of-fold images of one fold were training images of the other folds; compare "
                   "folds on the holdout for a fair view.]")
    images = ui.images_ui(settings, models[0], upload)
    if images is not None:
        ui.cam_grid(models, images, settings, classes)
except EngineError as e:
    st.error(str(e))
