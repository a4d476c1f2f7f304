"""Where the Train page's next launch trains: this machine, or a Ray cluster when one answers.

``launcher_ui`` returns the user's choice as a launcher. Ray is offered only when a cluster answers at
the address (the workspace default, else ``auto``); when none does, the widget says why and how to
start one. The probe is cached for a few seconds: the page reruns often, a cluster changes rarely.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.jobs import LocalLauncher
from engine.jobs.launch_settings import read_settings, write_settings
from engine.jobs.ray_launcher import DEFAULT_ADDRESS, ClusterProbe, RayLauncher, probe_cluster
from studio import state

LOCAL = "This machine"
RAY = "Ray cluster"


@st.cache_data(ttl=20, show_spinner=False)
def cluster_probe(address: str) -> ClusterProbe:
    """What the Ray cluster at ``address`` answered (nodes, CPUs, GPUs), or why it did not."""
    return probe_cluster(address)


def launcher_ui(workspace: Path) -> RayLauncher | LocalLauncher:
    """Draw the choice (outside the form, so it answers at once) and return the launcher to use."""
    settings = read_settings(workspace)
    st.session_state.setdefault(state.TRAIN_RAY_ADDRESS, settings.get("ray_address") or DEFAULT_ADDRESS)
    with st.expander("Where to train", expanded=settings.get("launcher") == "ray"):
        c1, c2 = st.columns([3, 2])
        address = c2.text_input("Ray cluster address", key=state.TRAIN_RAY_ADDRESS,
                                help="auto: the cluster `ray start --head` started on this machine; or HEAD_IP:6379.")
        with st.spinner(f"Looking for a Ray cluster at {address} ..."):
            probe = cluster_probe(address.strip() or DEFAULT_ADDRESS)
        options = [LOCAL, RAY] if probe.ok else [LOCAL]
        preferred = RAY if settings.get("launcher") == "ray" and probe.ok else LOCAL
        if st.session_state.get(state.TRAIN_LAUNCHER) not in options:
            st.session_state[state.TRAIN_LAUNCHER] = preferred
        choice = c1.radio("Train on", options, key=state.TRAIN_LAUNCHER, horizontal=True,
                          help="This machine: one background process per run, queued per device. Ray cluster: "
                               "each fold is a task that Ray places on any node with a free CPU / GPU.")
        if probe.ok:
            st.caption(f":material/hub: {probe.summary()}. On Ray each fold asks for *Data workers* + 1 CPUs, "
                       "and one GPU when it trains on CUDA; the workspace must be on storage every node sees.")
        else:
            st.caption(f":material/cloud_off: Ray cluster: not available — {probe.error}")
        if st.button("Make this the workspace default", key="train_launcher_default",
                     help=f"Saved in {workspace / 'settings.yaml'}; the command line uses it too."):
            write_settings(workspace, launcher="ray" if choice == RAY else "local",
                           ray_address=address.strip() or DEFAULT_ADDRESS)
            st.toast(f"Training on {choice.lower()} by default in this workspace.")
    if choice == RAY:
        return RayLauncher(workspace, address=address.strip() or DEFAULT_ADDRESS)
    return LocalLauncher(workspace)
