"""The network policy: when a run may download pretrained weights, and the environment a job gets.

- Nothing is downloaded unless the user allowed it for the run: ``model.allow_download: true`` in the
  config, ``--allow-download`` on ``python -m engine train``, or the Train page's "Allow downloads"
  switch. Off by default.
- ``HF_HUB_OFFLINE=1`` set by the user always wins: no download, whatever the run says.
- Every engine process otherwise runs with ``HF_HUB_OFFLINE=1``, so timm and huggingface_hub never
  reach the network on their own; a job whose run may download gets ``HF_HUB_OFFLINE=0``.

The engine sets ``HF_HUB_OFFLINE=1`` in its own environment, so the user's own value is kept aside
in ``FOLD_STUDIO_USER_HF_HUB_OFFLINE`` the first time (and inherited by job processes): "the user
said offline" stays distinct from "the engine said offline".

Import-cheap on purpose (only ``os``): ``engine/__init__`` applies :func:`protect_process` first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

OFFLINE_VAR = "HF_HUB_OFFLINE"
USER_VALUE_VAR = "FOLD_STUDIO_USER_HF_HUB_OFFLINE"
# What a job process always gets besides the network setting.
JOB_ENV_FIXED = {"NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONUNBUFFERED": "1"}
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's own reading of HF_HUB_OFFLINE


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def protect_process(environ: MutableMapping[str, str] | None = None) -> None:
    """Keep the user's ``HF_HUB_OFFLINE`` aside and put this process off-line (and albumentations' update check off).

    A process the engine started (the user's value already kept aside) keeps the ``HF_HUB_OFFLINE`` its
    starter chose (:func:`job_env`).
    """
    env = os.environ if environ is None else environ
    if USER_VALUE_VAR not in env:
        # The first engine process: whatever the user said, this process itself never downloads (only a
        # job whose run allows it does, through job_env); the user's value is kept for that decision.
        env[USER_VALUE_VAR] = env.get(OFFLINE_VAR, "")
        env[OFFLINE_VAR] = "1"
    else:  # a process the engine started: its environment was decided by job_env
        env.setdefault(OFFLINE_VAR, "1")
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def user_forbids_downloads(environ: Mapping[str, str] | None = None) -> bool:
    """True when the user (not the engine) set ``HF_HUB_OFFLINE`` to a true value (1 / on / yes / true)."""
    env = _environ(environ)
    value = env[USER_VALUE_VAR] if USER_VALUE_VAR in env else env.get(OFFLINE_VAR, "")
    return str(value).strip().upper() in _TRUE


def downloads_permitted(allow_download: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a run with ``model.allow_download = allow_download`` may download weights in this environment."""
    return bool(allow_download) and not user_forbids_downloads(environ)


def why_no_download(allow_download: bool, environ: Mapping[str, str] | None = None) -> str | None:
    """Why a run may not download (a sentence for a person), or None when it may."""
    if user_forbids_downloads(environ):
        return f"{OFFLINE_VAR}=1 is set in your environment, which always wins"
    if not allow_download:
        return "downloads are off for this run ('model.allow_download' is false)"
    return None


def job_env(*, allow_download: bool, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a job process training a run with ``model.allow_download = allow_download``.

    A copy of ``environ`` (default: this process's) with the user's ``HF_HUB_OFFLINE`` kept aside,
    ``HF_HUB_OFFLINE`` = ``0`` when the run may download and ``1`` otherwise, and :data:`JOB_ENV_FIXED`.
    """
    env = dict(_environ(environ))
    env.setdefault(USER_VALUE_VAR, env.get(OFFLINE_VAR, ""))
    env.update(JOB_ENV_FIXED)
    env[OFFLINE_VAR] = "0" if downloads_permitted(allow_download, env) else "1"
    return env
