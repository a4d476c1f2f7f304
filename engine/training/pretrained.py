"""Pretrained weights the timm way: none, timm's own hub weights (from the Hugging Face cache), or a local file.

``model.pretrained`` (:class:`~engine.training.config.ModelConfig`):

- ``none``: the model trains from scratch.
- ``hub``: the weights ``timm.create_model(name, pretrained=True)`` loads. timm's pretrained config
  names them: ``hf_hub_id`` (e.g. ``timm/resnet18.a1_in1k``, optionally ``@revision``) and the file
  (``hf_hub_filename``, else ``model.safetensors`` then ``pytorch_model.bin``: timm's order). They are
  looked up in the Hugging Face cache (:func:`hub_cache_dir`) as huggingface_hub does off-line
  (``refs/<revision>`` -> ``snapshots/<commit>/<file>``, :func:`huggingface_hub.try_to_load_from_cache`),
  and downloaded only when the run may (:mod:`engine.offline`). The few models timm knows only by a
  URL use timm's torch-hub cache (``$TORCH_HOME/hub/checkpoints``).
- a path: a local weights file (safetensors, or a torch state_dict read with ``weights_only=True``).

:func:`download` is the one place in the engine that reaches the network. It goes through timm's own
download helpers (``timm.models._hub``: huggingface_hub for hub weights, torch.hub for a URL), and only
a training job reaches it, for a run created with downloads permitted (:func:`weights_to_load`).

A run records what it used in ``model.weights_source`` (:func:`resolve_weights`, at creation): the
file, its SHA-256 and, for the hub, the repository, commit and file name.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from engine.errors import ConfigError, RunError
from engine.offline import downloads_permitted, user_forbids_downloads, why_no_download
from engine.training.config import PRETRAINED_HUB, PRETRAINED_NONE, ModelConfig, WeightsSource

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
# timm's load_state_dict_from_hf: the safetensors file first, then the pickle.
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
Availability = Literal["cached", "local file", "would download", "missing", "none"]


@dataclass(frozen=True)
class HubWeights:
    """Where timm gets a model's pretrained weights: a hub repository (and files), or a URL."""

    model_name: str
    hf_hub_id: str | None
    revision: str | None
    filenames: tuple[str, ...]
    url: str | None

    @property
    def kind(self) -> Literal["hub", "url"]:
        return "hub" if self.hf_hub_id else "url"

    @property
    def label(self) -> str:
        return f"hub id {self.hf_hub_id!r}" if self.hf_hub_id else f"URL {self.url!r}"


@dataclass(frozen=True)
class CachedWeights:
    path: Path
    revision: str | None
    filename: str


def timm_pretrained_cfg(model_name: str):
    """timm's pretrained config of a model name (default tag when none is given); None when timm has none."""
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(model_name)
    except RuntimeError as e:  # an unknown tag of a known architecture
        raise ConfigError(f"The 'model.name' parameter {model_name!r}: {e} See timm.list_pretrained("
                          f"'{model_name.split('.')[0]}*') for its tags.") from None


def hub_weights(model_name: str) -> HubWeights | None:
    """Where ``timm.create_model(model_name, pretrained=True)`` would load from; None when timm has no weights."""
    from timm.models import is_model_pretrained

    cfg = timm_pretrained_cfg(model_name)
    if cfg is None or not is_model_pretrained(model_name):
        return None
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")  # timm's hf_split: 'org/name@revision'
        filenames = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILENAMES
        return HubWeights(model_name, repo, revision or None, filenames, None)
    url = cfg.url[0] if isinstance(cfg.url, (tuple, list)) else cfg.url
    return HubWeights(model_name, None, None, (), url) if url else None


def hub_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache, read from the environment now, with huggingface_hub's precedence:
    ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``,
    ``~/.cache/huggingface/hub``."""
    env = os.environ if environ is None else environ

    def expand(text: str) -> Path:
        return Path(os.path.expandvars(os.path.expanduser(text)))

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return expand(env[var])
    if env.get("HF_HOME"):
        return expand(env["HF_HOME"]) / "hub"
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return expand(base) / "huggingface" / "hub"


def _torch_cache_file(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def cache_folder(weights: HubWeights, environ: Mapping[str, str] | None = None) -> Path:
    """The folder the weights are looked for in (the hub cache, or timm's torch-hub cache for a URL)."""
    return hub_cache_dir(environ) if weights.hf_hub_id else _torch_cache_file(weights.url or "").parent


def find_cached(weights: HubWeights, environ: Mapping[str, str] | None = None) -> CachedWeights | None:
    """The cached weights file (no network), or None when it is not in the cache."""
    if weights.url and not weights.hf_hub_id:
        path = _torch_cache_file(weights.url)
        return CachedWeights(path, None, path.name) if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir(environ)
    for filename in weights.filenames:
        found = try_to_load_from_cache(weights.hf_hub_id, filename, cache_dir=str(cache), revision=weights.revision)
        if isinstance(found, str):  # else None (not cached) or _CACHED_NO_EXIST (known to be absent)
            commit = Path(found).parent.name if Path(found).parent.parent.name == "snapshots" else None
            return CachedWeights(Path(found), commit, filename)
    return None


def download(weights: HubWeights, environ: Mapping[str, str] | None = None) -> CachedWeights:
    """Fetch the weights into the cache, as ``timm.create_model(name, pretrained=True)`` would, through timm's own
    download helpers. Only call when downloads are permitted (:func:`engine.offline.downloads_permitted`)."""
    from timm.models import _hub as timm_hub

    if weights.url and not weights.hf_hub_id:
        try:
            path = Path(timm_hub.download_cached_file(weights.url, check_hash=True, progress=False))
        except OSError as e:
            raise RunError(f"Downloading the weights of {weights.model_name!r} from {weights.url!r} failed: {e}") from None
        return CachedWeights(path, None, path.name)
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    if constants.is_offline_mode():  # read by huggingface_hub when it was imported: this process's environment
        raise RunError(f"The weights of {weights.model_name!r} ({weights.hf_hub_id!r}) may be downloaded, but this "
                       "process runs with HF_HUB_OFFLINE=1, so huggingface_hub refuses: a job's environment must "
                       "come from engine.offline.job_env (HF_HUB_OFFLINE=0 for a run that may download).")
    hub_id = f"{weights.hf_hub_id}@{weights.revision}" if weights.revision else weights.hf_hub_id  # timm's hf_split
    missing = []
    for filename in weights.filenames:
        try:
            found = timm_hub.download_from_hf(hub_id, filename, cache_dir=str(hub_cache_dir(environ)))
        except RemoteEntryNotFoundError:  # the repository has no such file: try timm's next one
            missing.append(filename)
            continue
        except (LocalEntryNotFoundError, OSError) as e:  # off-line mode, no network, HTTP errors
            raise RunError(f"Downloading {filename!r} of {weights.hf_hub_id!r} (the weights of "
                           f"{weights.model_name!r}) failed: {type(e).__name__}: {e}") from None
        path = Path(found)
        return CachedWeights(path, path.parent.name if path.parent.parent.name == "snapshots" else None, filename)
    raise RunError(f"The hub repository {weights.hf_hub_id!r} has none of the files timm loads ({missing}).")


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time) in this process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _sha256(real, st.st_size, st.st_mtime_ns)


def local_weights_file(pretrained: str) -> Path:
    """The local weights file that ``model.pretrained`` names; :class:`ConfigError` when it is missing."""
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"The 'model.pretrained' parameter names the file {str(path)!r}, which does not exist. Give the path of "
            f"a local weights file ({', '.join(WEIGHT_SUFFIXES)}), 'hub' for timm's pretrained weights, or 'none' "
            "to train from scratch."
        )
    return path.absolute()


def missing_message(weights: HubWeights, allow_download: bool, environ: Mapping[str, str] | None = None) -> str:
    """Why hub weights cannot be had, and the two ways out."""
    reason = why_no_download(allow_download, environ)
    files = " or ".join(repr(f) for f in weights.filenames) if weights.hf_hub_id else "the file"
    allow = ("unset HF_HUB_OFFLINE and allow downloads" if user_forbids_downloads(environ) else "allow downloads")
    return (
        f"The pretrained weights of model {weights.model_name!r} are not cached: timm loads {files} from "
        f"{weights.label}, looked for in the cache folder {str(cache_folder(weights, environ))!r}, and {reason}. "
        f"Either {allow} ('model.allow_download: true', `python -m engine train --allow-download`, or the Train "
        "page's 'Allow downloads' switch), or name a local weights file in 'model.pretrained' (a copy of those "
        "weights; another cache folder can be given with HF_HUB_CACHE)."
    )


def no_weights_message(model_name: str) -> str:
    return (f"timm has no pretrained weights for model {model_name!r}, so 'model.pretrained: hub' cannot be used. "
            "Use 'none' (train from scratch), a local weights file, or a model with weights "
            "(timm.list_models(pretrained=True)).")


def resolve_weights(model_cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> WeightsSource:
    """Which weights a run will start from (``model.weights_source``), decided before the run is created.

    Off-line and not cached, a missing file, or a model timm has no weights for: :class:`ConfigError`.
    Hub weights that may be downloaded and are not cached yet get ``path: null``; the job fills it in.
    """
    pretrained = model_cfg.pretrained
    if pretrained == PRETRAINED_NONE:
        return WeightsSource(kind="none")
    if pretrained != PRETRAINED_HUB:
        path = local_weights_file(pretrained)
        return WeightsSource(kind="file", path=str(path), sha256=file_sha256(path))
    weights = hub_weights(model_cfg.name)
    if weights is None:
        raise ConfigError(no_weights_message(model_cfg.name))
    found = find_cached(weights, environ)
    if found is None and not downloads_permitted(model_cfg.allow_download, environ):
        raise ConfigError(missing_message(weights, model_cfg.allow_download, environ))
    return _source(weights, found)


def _source(weights: HubWeights, found: CachedWeights | None) -> WeightsSource:
    return WeightsSource(
        kind=weights.kind, hf_hub_id=weights.hf_hub_id, url=weights.url,
        revision=found.revision if found else weights.revision, filename=found.filename if found else None,
        path=str(found.path) if found else None, sha256=file_sha256(found.path) if found else None,
    )


def weights_to_load(model_cfg: ModelConfig, environ: Mapping[str, str] | None = None) -> tuple[Path | None, WeightsSource]:
    """The weights file to start training from (None: from scratch) and the source it fills in.

    Uses the file recorded in ``model.weights_source`` (checked against its SHA-256), else resolves
    ``model.pretrained`` now: a hub miss is downloaded when the run may, else :class:`ConfigError`.
    """
    recorded = model_cfg.weights_source
    if model_cfg.pretrained == PRETRAINED_NONE:
        return None, WeightsSource(kind="none")
    if recorded is not None and recorded.path and Path(recorded.path).is_file():
        _check_unchanged(Path(recorded.path), recorded)
        return Path(recorded.path), recorded
    if model_cfg.pretrained != PRETRAINED_HUB:
        if recorded is not None and recorded.path:
            raise ConfigError(f"The weights file {recorded.path!r} this run was created with no longer exists; "
                              "put it back (the run's config.yaml records its SHA-256) or create a new run.")
        source = resolve_weights(model_cfg, environ)
        return Path(source.path), source
    weights = hub_weights(model_cfg.name)
    if weights is None:
        raise ConfigError(no_weights_message(model_cfg.name))
    found = find_cached(weights, environ)
    if found is None:
        if not downloads_permitted(model_cfg.allow_download, environ):
            raise ConfigError(missing_message(weights, model_cfg.allow_download, environ))
        found = download(weights, environ)
    source = _source(weights, found)
    if recorded is not None and recorded.sha256:
        _check_unchanged(found.path, recorded)
    return found.path, source


def _check_unchanged(path: Path, recorded: WeightsSource) -> None:
    if recorded.sha256 and file_sha256(path) != recorded.sha256:
        raise ConfigError(f"The weights file {str(path)!r} changed since the run was created (SHA-256 "
                          f"{file_sha256(path)[:12]}... instead of {recorded.sha256[:12]}...); its folds would not "
                          "start from the same weights. Restore the file or create a new run.")


def fetch_pending_weights(run_dir: str | Path, cfg):
    """A run created to download its hub weights (``weights_source.path: null``): download them now (the job
    does, before training) and record the file and its SHA-256 in the run's config.yaml. Returns the config."""
    source = cfg.model.weights_source
    if cfg.model.pretrained == PRETRAINED_NONE or source is None or source.path:
        return cfg
    from engine.runs import write_config

    _, filled = weights_to_load(cfg.model)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"weights_source": filled})})
    write_config(run_dir, cfg.model_dump(mode="json"))
    return cfg


# ---------------------------------------------------------------- what the Train page shows


@dataclass(frozen=True)
class PretrainedStatus:
    """Whether a model's pretrained weights can be had, and the input they want.

    ``availability``: cached | local file | would download | missing | none (from scratch).
    ``input_size`` (C, H, W), ``mean``, ``std``, ``interpolation``: timm's pretrained config of the model.
    """

    model_name: str
    pretrained: str
    availability: Availability
    message: str
    source: str | None  # hub id, URL or file path
    path: str | None
    cache_dir: str | None
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    fixed_input_size: bool

    @property
    def usable(self) -> bool:
        """True when a run with these settings can be created."""
        return self.availability != "missing"

    @property
    def uses_weights(self) -> bool:
        return self.availability in ("cached", "local file", "would download")


def describe_pretrained(model_name: str, pretrained: Any = PRETRAINED_NONE, allow_download: bool = False, *,
                        environ: Mapping[str, str] | None = None) -> PretrainedStatus:
    """What ``model.pretrained`` would give for ``model_name``, without building the model or any network.

    Cheap (timm's registry and a few ``stat`` calls): the Train page asks on every rerun.
    """
    from engine.training.config import check_pretrained
    from engine.training.models import check_model_name, model_data_config

    check_model_name(model_name)
    pretrained = check_pretrained(pretrained)
    data = model_data_config(model_name)
    cfg = timm_pretrained_cfg(model_name)
    common = {"model_name": model_name, "pretrained": pretrained, "input_size": tuple(data["input_size"]),
              "mean": data["mean"], "std": data["std"], "interpolation": data["interpolation"],
              "fixed_input_size": bool(cfg is not None and cfg.fixed_input_size)}
    if pretrained == PRETRAINED_NONE:
        return PretrainedStatus(availability="none", message="No pretrained weights: the model trains from scratch.",
                                source=None, path=None, cache_dir=None, **common)
    if pretrained != PRETRAINED_HUB:
        path = Path(pretrained).expanduser()
        if path.is_file():
            return PretrainedStatus(availability="local file", message=f"Starts from the local file {str(path)!r}.",
                                    source=str(path), path=str(path), cache_dir=None, **common)
        return PretrainedStatus(availability="missing", message=f"The file {str(path)!r} does not exist.",
                                source=str(path), path=None, cache_dir=None, **common)
    weights = hub_weights(model_name)
    if weights is None:
        return PretrainedStatus(availability="missing", message=no_weights_message(model_name), source=None,
                                path=None, cache_dir=None, **common)
    source, folder = weights.hf_hub_id or weights.url, str(cache_folder(weights, environ))
    found = find_cached(weights, environ)
    if found is not None:
        return PretrainedStatus(availability="cached", message=f"Cached: {found.filename!r} of {weights.label}, "
                                f"loaded with no network.", source=source, path=str(found.path), cache_dir=folder,
                                **common)
    if downloads_permitted(allow_download, environ):
        return PretrainedStatus(availability="would download", message=f"Not cached: the job downloads it from "
                                f"{weights.label} into {folder!r} before training.", source=source, path=None,
                                cache_dir=folder, **common)
    return PretrainedStatus(availability="missing", message=missing_message(weights, allow_download, environ),
                            source=source, path=None, cache_dir=folder, **common)
