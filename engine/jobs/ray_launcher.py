"""The Ray backend of the launcher: every fold of every run is a Ray task, so Ray spreads folds over
every CPU and GPU of every node of a cluster.

    from engine.jobs import launch_training
    from engine.jobs.ray_launcher import RayLauncher

    launch_training("configs/demo.yaml", launcher=RayLauncher(address="auto"))   # or 'HEAD_IP:6379'

``submit`` starts one detached driver actor per run on the cluster (:class:`engine.jobs.ray_worker.RunDriver`):
it submits one task per unfinished fold (``num_cpus = train.num_workers + 1``, ``num_gpus = 1`` when the
run trains on CUDA, ``max_retries``), keeps the run's heartbeat, and records the final state. The run
directory stays the job's record: status, metrics, predictions and weights are written there by the
fold tasks as a local job writes them, so the workspace must be on storage every node sees (for one
machine, the local folder). ``status.json`` says ``launcher: ray``, ``driver`` (the actor, in words) and
``ray: {address, namespace, actor, ...}`` with no ``pid``: the driver's heartbeat is the run's sign of
life (:func:`engine.runs.liveness.driven_remotely`), so a studio restart loses nothing and a lost driver
or cluster shows as ``failed`` within :data:`~engine.runs.liveness.HEARTBEAT_STALE_S` seconds.

``ray`` is imported on first use: without it, or without a cluster at the address, the launcher
raises :class:`~engine.errors.RunError` naming the address and how to start one (``ray start --head``),
before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engine
from engine.errors import RunError
from engine.jobs.launcher import CANCEL_TIMEOUT_S, Launcher
from engine.runs import ACTIVE_STATES, effective_status, log_path, mark_finished, now_iso, read_status, update_status

log = logging.getLogger(__name__)

NAMESPACE = "fold-studio"
DEFAULT_ADDRESS = "auto"
DEFAULT_MAX_RETRIES = 2
CONNECT_TIMEOUT_S = 3.0
START_HINT = ("Start a cluster with `ray start --head` on this machine (other machines join it with "
              "`ray start --address HEAD_IP:6379`; see docs/scale-out.md), or train with the local launcher")
_CONNECTED: dict[str, str] = {}  # the address this process connected to itself


# ---------------------------------------------------------------- connecting


def import_ray():
    """The ``ray`` module, or a :class:`RunError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RunError("The Ray launcher needs Ray, which is not installed here: pip install 'ray==2.60.0' "
                       "(or train with the local launcher).") from None
    return ray


# Ray replaces a loopback node address (`--node-ip-address 127.0.0.1`) by the machine's own network address, so a
# "local" cluster would still listen on, and connect through, that address. With clusters switched off (the switch
# Ray keeps for Windows / macOS), every process of a one-machine cluster binds and connects to 127.0.0.1 instead.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def keep_on_loopback():
    """Make this process (and the Ray processes it starts) use only 127.0.0.1; returns the ``ray`` module.

    For one-machine clusters (tests, benchmarks): a multi-node cluster needs the network address.
    """
    os.environ.update(LOOPBACK_ENV)
    ray = import_ray()
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time: also right when ray was imported before
    return ray


def _auto_address() -> str:
    """What ``auto`` means: $RAY_ADDRESS, else the cluster ``ray start`` last started on this machine (the
    address it wrote in /tmp/ray/ray_current_cluster). Unlike Ray's own ``auto``, never a cluster found by
    listing the machine's processes: on a shared machine that may be someone else's."""
    from ray._private.utils import read_ray_address

    found = os.environ.get("RAY_ADDRESS") or read_ray_address()
    if not found:
        raise RunError(f"No Ray cluster answers at 'auto': none was started on this machine with `ray start`, "
                       f"and $RAY_ADDRESS is not set. {START_HINT}.")
    return found


def resolve_address(address: str | None = None) -> str:
    """``host:port`` of the cluster's head for ``address`` (``auto``: $RAY_ADDRESS, else the cluster
    ``ray start`` last started on this machine), checked to answer on TCP; :class:`RunError` naming it if not."""
    import_ray()
    from ray._private.services import canonicalize_bootstrap_address

    wanted = address or DEFAULT_ADDRESS
    found = _auto_address() if wanted == DEFAULT_ADDRESS else wanted
    if found.startswith("ray://"):  # Ray Client: probe its host:port, hand the address to ray.init as is
        target, resolved = found[len("ray://"):], found
    else:
        try:
            target = resolved = canonicalize_bootstrap_address(found)
        except (ConnectionError, ValueError) as e:
            raise RunError(f"No Ray cluster answers at {wanted!r}: {e} {START_HINT}.") from None
        if resolved is None:  # 'local': Ray would start a private instance, which is no cluster to share
            raise RunError(f"The Ray address must be 'auto' or HOST:PORT of a cluster's head. Got {wanted!r}.")
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise RunError(f"No Ray cluster answers at {wanted!r} (tried {target}: {why}). {START_HINT}.") from None
    return resolved


def connect(address: str | None = None) -> str:
    """Connect this process to the Ray cluster at ``address`` (once; reused after) and return its address.

    A connection this process already has (``ray.init`` by the caller) is used when ``address`` is
    ``auto`` or names the same cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address in (None, DEFAULT_ADDRESS, current):
            return current
        resolved = resolve_address(address)
        if resolved == current:
            return current
        if _CONNECTED.get("address") != current:
            raise RunError(f"This process is already connected to the Ray cluster at {current}; it cannot also "
                           f"use {address!r}. Use address 'auto' (that cluster) or a new process.")
        ray.shutdown()
    resolved = resolve_address(address)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    ray.init(address=resolved, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    if in_main:  # ray.init makes SIGTERM exit the process; this process keeps its own handling
        signal.signal(signal.SIGTERM, previous)
    _CONNECTED["address"] = ray.get_runtime_context().gcs_address
    return _CONNECTED["address"]


def cluster_nodes() -> list[dict[str, Any]]:
    """The live nodes of the connected cluster: ``address``, ``cpus``, ``gpus``."""
    ray = import_ray()
    return [{"address": n.get("NodeManagerAddress"), "cpus": float(n["Resources"].get("CPU", 0)),
             "gpus": float(n["Resources"].get("GPU", 0))} for n in ray.nodes() if n.get("Alive")]


@dataclass
class ClusterProbe:
    """What a cluster answered (``ok``), or why it did not (``error``)."""

    address: str
    ok: bool
    nodes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def cpus(self) -> int:
        return int(sum(n["cpus"] for n in self.nodes))

    @property
    def gpus(self) -> int:
        return int(sum(n["gpus"] for n in self.nodes))

    def summary(self) -> str:
        if not self.ok:
            return str(self.error)
        return (f"Ray cluster at {self.address}: {len(self.nodes)} node(s), {self.cpus} CPU(s), "
                f"{self.gpus} GPU(s)")


def probe_cluster(address: str | None = None) -> ClusterProbe:
    """Connect to the cluster at ``address`` and describe it; never raises (the error is in the answer)."""
    try:
        resolved = connect(address)
        return ClusterProbe(resolved, True, cluster_nodes())
    except Exception as e:  # noqa: BLE001 - the studio shows why Ray is not offered
        return ClusterProbe(address or DEFAULT_ADDRESS, False, error=str(e))


# ---------------------------------------------------------------- what a fold asks for


def fold_resources(cfg, nodes: Sequence[dict[str, Any]], address: str, *,
                   cpus_per_fold: int | None = None) -> dict[str, Any]:
    """The Ray resources of each fold task of a run: ``num_cpus`` (``cpus_per_fold``, default
    ``train.num_workers + 1``: the DataLoader workers plus the training process), ``num_gpus`` (1 when
    the run's ``device`` is ``cuda`` / ``cuda:N``, or ``auto`` on a cluster with GPUs) and the
    ``device`` the task trains on.

    :class:`RunError` when no live node could ever run such a task (Ray would keep it waiting forever).
    """
    num_cpus = int(cpus_per_fold) if cpus_per_fold else int(cfg.train.num_workers) + 1
    has_gpus = any(n["gpus"] >= 1 for n in nodes)
    wants_gpu = cfg.device.startswith("cuda") or (cfg.device == "auto" and has_gpus)
    if wants_gpu and not has_gpus:
        raise RunError(f"The run asks for device {cfg.device!r}, but no node of the Ray cluster at {address} has "
                       f"a GPU. Set device to 'cpu' or 'auto', or add GPU nodes to the cluster.")
    if not any(n["cpus"] >= num_cpus and n["gpus"] >= int(wants_gpu) for n in nodes):
        largest = max((n["cpus"] for n in nodes if n["gpus"] >= int(wants_gpu)), default=0)
        asked = (f"{num_cpus} CPU(s)" if cpus_per_fold else
                 f"{num_cpus} CPU(s) (train.num_workers + 1 = {cfg.train.num_workers} + 1)")
        fix = ("Ask for fewer CPUs per fold" if cpus_per_fold else
               f"Lower train.num_workers to at most {max(int(largest) - 1, 0)}")
        raise RunError(f"Each fold asks Ray for {asked}{' and a GPU' if wants_gpu else ''}, but the largest "
                       f"{'GPU ' if wants_gpu else ''}node of the cluster at {address} has {largest:g} CPU(s). "
                       f"{fix}.")
    return {"num_cpus": num_cpus, "num_gpus": int(wants_gpu), "device": "cuda" if wants_gpu else "cpu"}


def worker_runtime_env(*, allow_download: bool = False) -> dict[str, Any]:
    """The driver's and fold tasks' environment: this engine importable, the network policy of a job
    (:func:`engine.offline.job_env`: ``HF_HUB_OFFLINE=0`` only for a run allowed to download)."""
    from engine.offline import JOB_ENV_FIXED, OFFLINE_VAR, USER_VALUE_VAR, job_env

    env = job_env(allow_download=allow_download)
    root = str(Path(engine.__file__).resolve().parents[1])
    return {"env_vars": {k: env[k] for k in (OFFLINE_VAR, USER_VALUE_VAR, *JOB_ENV_FIXED)} | {"PYTHONPATH": root}}


# ---------------------------------------------------------------- the launcher


class RayLauncher(Launcher):
    """Runs each fold of a run as a Ray task on the cluster at ``address`` (default ``auto``).

    ``max_retries``: how many times Ray trains a fold again from its start when the worker process or
    node training it dies (an error of the training itself is not retried: the fold fails).
    ``cpus_per_fold``: the CPUs each fold reserves (default: the run's ``train.num_workers + 1``).
    """

    def __init__(self, workspace: str | os.PathLike | None = None, *, address: str | None = None,
                 max_retries: int = DEFAULT_MAX_RETRIES, cpus_per_fold: int | None = None) -> None:
        super().__init__(workspace)
        self.address = address or DEFAULT_ADDRESS
        self.max_retries = int(max_retries)
        self.cpus_per_fold = cpus_per_fold

    def check(self, configs: Sequence[Any] = ()) -> None:
        """Connect to the cluster now: :class:`RunError` (naming the address) when it does not answer, or
        when no node could take a fold of one of ``configs`` (naming what to change)."""
        address = connect(self.address)
        nodes = cluster_nodes() if configs else []
        for cfg in configs:
            fold_resources(cfg, nodes, address, cpus_per_fold=self.cpus_per_fold)

    def config_fields(self) -> dict[str, str | None]:
        return {"launcher": "ray", "ray_address": self.address}

    def submit(self, run: str | os.PathLike, *, folds: Sequence[int] | None = None) -> dict:
        """Start the run's driver on the cluster (it returns at once); return the run's status."""
        from engine.jobs.ray_worker import CancelMarker, RunDriver
        from engine.training.config import read_run_config

        run_dir = self.run_dir(run)
        status = effective_status(run_dir)
        if status.get("alive"):
            raise RunError(f"Run {run_dir.name!r} is already {status['state']} ({_where(status)}); cancel it first.")
        cfg = read_run_config(run_dir)
        ray = import_ray()
        address = connect(self.address)
        spec = {**fold_resources(cfg, cluster_nodes(), address, cpus_per_fold=self.cpus_per_fold),
                "max_retries": self.max_retries}
        actor = f"run-{run_dir.name}-{secrets.token_hex(3)}"  # new per submission: an exiting driver keeps its name a while
        CancelMarker(run_dir).clear()
        update_status(run_dir, state="queued", pid=None, pgid=None, pid_started=None, error=None, finished_at=None,
                      launcher="ray", driver=f"Ray actor {actor} on the cluster at {address}",
                      ray={"address": address, "namespace": NAMESPACE, "actor": actor, **spec},
                      message=f"submitted to the Ray cluster at {address}")
        with open(log_path(run_dir), "a", encoding="utf-8") as log_file:
            log_file.write(f"\n=== job submitted {now_iso()} to the Ray cluster at {address} (driver {actor}) ===\n")
        driver = ray.remote(RunDriver).options(
            name=actor, namespace=NAMESPACE, lifetime="detached", num_cpus=0, max_concurrency=4, max_restarts=0,
            runtime_env=worker_runtime_env(allow_download=cfg.model.allow_download))
        # Creating the detached actor starts the run; it goes on whether or not this process stays.
        driver.remote(str(run_dir), None if folds is None else [int(f) for f in folds], spec)
        return effective_status(run_dir)

    def cancel(self, run: str | os.PathLike, *, timeout: float = CANCEL_TIMEOUT_S) -> dict:
        """Ask the run's driver to stop (folds stop at their next batch; after ``timeout`` s they are killed),
        wait for its final state; without a reachable driver, mark the run ``cancelled`` here."""
        from engine.jobs.ray_worker import CancelMarker

        run_dir = self.run_dir(run)
        status = read_status(run_dir)
        if status.get("state") not in ACTIVE_STATES:
            raise RunError(f"Run {run_dir.name!r} is not running (state: {status.get('state')}); nothing to cancel.")
        if status.get("pid") is not None:  # a local job trains it: signalling that process is the local launcher's
            raise RunError(f"Run {run_dir.name!r} is trained by a local job (pid {status['pid']}), not on Ray; "
                           f"cancel it with: python -m engine cancel {run_dir.name}")
        CancelMarker(run_dir).set()  # fold tasks stop at their next batch even if the driver cannot be reached
        info = status.get("ray") or {}
        try:
            ray = import_ray()
            connect(info.get("address") or self.address)
            driver = ray.get_actor(info["actor"], namespace=info.get("namespace", NAMESPACE))
            ray.get(driver.cancel.remote(timeout), timeout=timeout + 60)
        except (RunError, KeyError, ValueError) as e:  # no cluster, no record of the driver, or the driver is gone
            log.warning("%s: cannot reach the run's Ray driver (%s); marking it cancelled here", run_dir.name, e)
        except Exception as e:  # noqa: BLE001 - the driver exited as it answered, or did not answer in time
            log.info("%s: the Ray driver ended while cancelling (%s)", run_dir.name, type(e).__name__)
        if read_status(run_dir).get("state") in ACTIVE_STATES:
            mark_finished(run_dir, "cancelled")
        return effective_status(run_dir)


def _where(status: dict) -> str:
    return status.get("driver") or f"pid {status.get('pid')}"


# ---------------------------------------------------------------- a private cluster on this machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def local_ray_cluster(*, num_cpus: int = 2, num_gpus: int | None = None, object_store_mb: int = 128,
                      start_timeout: float = 120.0) -> Iterator[str]:
    """A private single-machine Ray cluster for tests and benchmarks; yields its address.

    ``ray start --head --block`` with its own temp dir and free ports (so it meets no other cluster on a
    shared machine); at the end only its own processes (the head and its workers) are stopped.
    """
    keep_on_loopback()
    temp_dir = tempfile.mkdtemp(prefix="fsray-", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    cmd = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())",
           "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
           "--num-cpus", str(num_cpus), "--include-dashboard", "false", "--disable-usage-stats",
           "--temp-dir", temp_dir, "--object-store-memory", str(object_store_mb * 1024 * 1024),
           "--ray-client-server-port", str(_free_port()), "--dashboard-port", str(_free_port()),
           "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
           "--metrics-export-port", str(_free_port()), "--runtime-env-agent-port", str(_free_port())]
    if num_gpus is not None:
        cmd += ["--num-gpus", str(num_gpus)]
    env = {**os.environ, **worker_runtime_env()["env_vars"], **LOOPBACK_ENV, "RAY_USAGE_STATS_ENABLED": "0"}
    out = open(Path(temp_dir) / "head.log", "w+b")  # noqa: SIM115 - closed in the finally below
    head = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout
        while b"Ray runtime started" not in Path(out.name).read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RunError(f"`ray start --head` did not start a cluster:\n"
                               f"{Path(out.name).read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        ray = import_ray()
        if ray.is_initialized() and _CONNECTED.get("address", "").endswith(f":{port}"):
            ray.shutdown()
            _CONNECTED.clear()
        _stop_tree(head)
        out.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_tree(head: subprocess.Popen) -> None:
    """SIGTERM the head (it stops its own processes), then SIGKILL whatever of its tree is left after 5 s."""
    tree = _descendants(head.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for pid in [head.pid, *tree, *_descendants(head.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=5)
