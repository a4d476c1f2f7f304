"""Fold Studio — the Streamlit entrypoint: a router and a frame.

Initialises session state, draws the shared sidebar (dataset, workspace) and runs the chosen page
from ../pages via st.navigation. Pages are listed here explicitly, grouped the way the work flows.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"

# (group, file, title, icon) — a page whose file does not exist yet is left out of the menu.
PAGES = [
    ("Prepare", "data.py", "Data", ":material/dataset:"),
    ("Prepare", "augment.py", "Augment", ":material/auto_fix_high:"),
    ("Train", "train.py", "Train", ":material/model_training:"),
    ("Compare", "folds.py", "Folds", ":material/view_column:"),
    ("Compare", "ensemble.py", "Ensemble", ":material/join:"),
    ("Compare", "gradcam.py", "Grad-CAM", ":material/visibility:"),
    ("Compare", "review.py", "Review", ":material/rule:"),
    ("Ship", "submit.py", "Submit", ":material/upload_file:"),
]


def _navigation() -> dict[str, list]:
    groups: dict[str, list] = {}
    for group, file, title, icon in PAGES:
        path = PAGES_DIR / file
        if path.is_file():
            groups.setdefault(group, []).append(st.Page(path, title=title, icon=icon))
    return groups


st.set_page_config(page_title="Fold Studio", page_icon=":material/stacks:", layout="wide")

from studio import state  # noqa: E402
from studio.sidebar import dataset_sidebar  # noqa: E402

state.init()
dataset_sidebar()
pages = _navigation()
if pages:
    st.navigation(pages).run()
