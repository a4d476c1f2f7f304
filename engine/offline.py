"""The engine's network policy, in one place: nothing is downloaded at run time.

:func:`offline_environment` decides which environment variables keep the libraries the engine uses
offline (huggingface_hub / timm: ``HF_HUB_OFFLINE``; albumentations' update check:
``NO_ALBUMENTATIONS_UPDATE``). ``import engine`` applies it to its own process first thing
(:func:`apply_offline_environment`), before any of those libraries is imported, and every job
process the engine starts gets the same values (:func:`engine.jobs.runner.job_environment`). To
change the policy (e.g. let a user switch downloads on), change :func:`offline_environment` alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping


def offline_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables (name -> value) a process of the engine runs with, given the caller's environment.

    Today's policy: always offline, whatever ``environ`` says.
    """
    return {"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def apply_offline_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :func:`offline_environment` in ``environ`` (default: this process's ``os.environ``)."""
    environ = os.environ if environ is None else environ
    environ.update(offline_environment(environ))
