"""Progress: the engine reports through a ``progress(done, total)`` callback; here it becomes ``st.progress``."""

from __future__ import annotations

import time

import streamlit as st


class ProgressBar:
    """A ``progress(done, total)`` callback drawing an ``st.progress`` bar, updated at most every ``interval`` s.

    Throttled because a scan of 20,000 images calls back 20,000 times and each update is a message to
    the browser.
    """

    def __init__(self, text: str, *, interval: float = 0.25) -> None:
        self.text = text
        self.interval = interval
        self.bar = st.progress(0.0, text=text)
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        share = done / total if total else 1.0
        self.bar.progress(min(max(share, 0.0), 1.0), text=f"{self.text} {done:,} / {total:,}")

    def done(self) -> None:
        self.bar.empty()


def jobs_strip(jobs: list[dict], damaged: list[dict] = ()) -> None:
    """A compact list of queued / running jobs (dicts from ``studio.loaders.active_jobs``), and a warning
    naming each damaged run (``studio.loaders.damaged_runs``)."""
    if not jobs:
        st.caption("No training job running.")
    else:
        st.caption(f"{len(jobs)} job(s) running or queued")
    for job in jobs[:5]:
        label = f"`{job['run_id']}` · {job['state']}" + (f" · {job['folds']}" if job["folds"] else "")
        st.progress(job["progress"], text=label)
    if len(jobs) > 5:
        st.caption(f"... and {len(jobs) - 5} more")
    for run in damaged[:3]:
        st.warning(f"Run `{run['run_id']}` is damaged; see the Train page.", icon=":material/report:")
    if len(damaged) > 3:
        st.caption(f"... and {len(damaged) - 3} more damaged runs")
