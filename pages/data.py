"""Data page (placeholder until the EDA page lands): the open dataset's size."""

import streamlit as st

from studio import state
from studio.loaders import load_dataset_cached

st.title("Data")
ds = load_dataset_cached(state.dataset_path())
st.write(f"**{ds.name}** — {len(ds.manifest):,} training images in {ds.num_classes} classes.")
