"""Data page (EDA): overview, class balance, metadata against the label, image properties, problems, gallery.

Thin: the scan and every derived table come from studio.loaders (cached by path + mtime); only the
open tab is computed on a rerun, and the gallery is a fragment.
"""

import streamlit as st

from engine.data.manifest import label_source_text
from studio import loaders, state
from studio.widgets import eda
from studio.widgets.common import require_dataset
from studio.widgets.gallery import gallery
from studio.widgets.review import overrides_note

dataset = require_dataset()
st.title("Data")
st.caption(f"**{dataset.name}** · `{dataset.spec_path or dataset.root}`")
st.caption(label_source_text(dataset.label_source()))
overrides_note(dataset)

token = loaders.scan_token(state.dataset_path(), state.workspace())
scan = eda.scan_or_stop(dataset, token)
table = loaders.training_table(token, dataset)
dist = loaders.class_distribution_frame(token, dataset)
problems = loaders.problems_frame(token)

eda.overview(dataset, table, dist, problems)

tabs = st.tabs(["Classes", "Metadata", "Image properties", "Problems", "Gallery"],
               key=state.DATA_TAB, on_change="rerun")
with tabs[0]:
    if tabs[0].open:
        eda.classes_section(dataset, token, dist)
with tabs[1]:
    if tabs[1].open:
        eda.metadata_section(dataset, token)
with tabs[2]:
    if tabs[2].open:
        eda.properties_section(dataset, table)
with tabs[3]:
    if tabs[3].open:
        eda.problems_section(dataset, problems)
with tabs[4]:
    if tabs[4].open:
        gallery(table, dataset.classes, dataset.metadata_columns, problems)

with st.expander("Scan details"):
    st.caption(f"{scan.rescanned:,} image(s) read in this scan, {scan.cached:,} taken from the workspace's scan "
               "cache. Rescan after adding or replacing images.")
    if st.button("Rescan images", icon=":material/refresh:", key="data_rescan"):
        loaders.forget_scan(state.dataset_path(), state.workspace())
        st.rerun()
