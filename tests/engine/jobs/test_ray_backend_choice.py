"""Choosing the Ray backend, what each fold asks of the cluster, and what happens without Ray or a cluster.

None of these start Ray (test_ray_launcher.py does, once per session): they take milliseconds.
"""

from __future__ import annotations

import json
import socket
import sys
from datetime import UTC, datetime, timedelta

import pytest

from engine.cli import main as cli_main
from engine.errors import ConfigError, RunError
from engine.jobs import LocalLauncher, choose_launcher, effective_status, launch_training, launcher_for_run
from engine.jobs.launch_settings import read_settings, settings_path, write_settings
from engine.jobs.launcher import prepare_resume
from engine.jobs.ray_launcher import RayLauncher, fold_resources, import_ray, resolve_address
from engine.training.config import parse_run_config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


def _cfg(**fields):
    return parse_run_config({"dataset": "/nowhere/dataset.yaml", **fields})


# ---------------------------------------------------------------- which launcher


def test_the_local_launcher_stays_the_default(workspace, monkeypatch):
    monkeypatch.delenv("FOLD_STUDIO_LAUNCHER", raising=False)
    assert isinstance(choose_launcher(workspace), LocalLauncher)
    assert not settings_path(workspace).exists()


def test_flag_then_config_then_environment_then_workspace_settings(workspace, monkeypatch):
    monkeypatch.delenv("FOLD_STUDIO_LAUNCHER", raising=False)
    write_settings(workspace, launcher="ray", ray_address="10.0.0.1:6379")
    chosen = choose_launcher(workspace)
    assert isinstance(chosen, RayLauncher) and chosen.address == "10.0.0.1:6379"  # built without connecting
    assert isinstance(choose_launcher(workspace, name="local"), LocalLauncher)
    assert choose_launcher(workspace, address="10.0.0.2:6379").address == "10.0.0.2:6379"
    assert isinstance(choose_launcher(workspace, config=_cfg(launcher="local")), LocalLauncher)
    assert choose_launcher(workspace, config=_cfg(ray_address="10.0.0.3:6379")).address == "10.0.0.3:6379"
    monkeypatch.setenv("FOLD_STUDIO_LAUNCHER", "local")
    assert isinstance(choose_launcher(workspace), LocalLauncher)
    assert isinstance(choose_launcher(workspace, config=_cfg(launcher="ray")), RayLauncher)

    write_settings(workspace, launcher=None)  # None removes a setting
    assert read_settings(workspace) == {"ray_address": "10.0.0.1:6379"}
    monkeypatch.delenv("FOLD_STUDIO_LAUNCHER")
    assert choose_launcher(workspace, name="ray").address == "10.0.0.1:6379"


def test_bad_workspace_settings_name_the_file_and_the_field(workspace):
    settings_path(workspace).write_text("launcher: slurm\n")
    with pytest.raises(ConfigError, match=r"'launcher' field of .*settings.yaml.* must be one of \[.*'ray'.*\]\. "
                                          r"Got 'slurm' instead"):
        choose_launcher(workspace)
    settings_path(workspace).write_text("launchr: ray\n")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['launchr'\]"):
        read_settings(workspace)
    with pytest.raises(ConfigError, match="launcher"):
        parse_run_config({"dataset": "d.yaml", "launcher": "slurm"})


# ---------------------------------------------------------------- no Ray, no cluster


def test_no_cluster_at_the_address_is_refused_before_any_run_is_written(workspace, demo_spec_path):
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(RunError, match=rf"No Ray cluster answers at '{address}'.*ray start --head"):
        RayLauncher(workspace, address=address).check()
    config = {"dataset": str(demo_spec_path), "model": {"name": "test_convnext3"}, "launcher": "ray",
              "ray_address": address}
    with pytest.raises(RunError, match=address):
        launch_training(config, workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_the_command_line_says_which_address_it_tried(workspace, demo_spec_path, tmp_path, capsys):
    address = f"127.0.0.1:{_closed_port()}"
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: {demo_spec_path}\nmodel: {{name: test_convnext3}}\n")
    code = cli_main(["train", str(config), "--workspace", str(workspace), "--launcher", "ray",
                     "--ray-address", address])
    assert code == 2
    err = capsys.readouterr().err
    assert f"No Ray cluster answers at '{address}'" in err and "ray start --head" in err
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_auto_means_ray_address_or_the_cluster_ray_start_left_here_never_another_found_by_ps(workspace,
                                                                                            monkeypatch):
    import ray._private.utils

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray._private.utils, "read_ray_address", lambda temp_dir=None: None)
    with pytest.raises(RunError, match=r"at 'auto': none was started on this machine with `ray start`"):
        resolve_address("auto")
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(RunError, match=rf"No Ray cluster answers at 'auto' \(tried [0-9.]+:{address.split(':')[1]}"):
        resolve_address("auto")
    with pytest.raises(RunError, match="must be 'auto' or HOST:PORT"):
        RayLauncher(workspace, address="local").check()


def test_without_ray_installed_the_message_says_how_to_install_it(workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is missing
    with pytest.raises(RunError, match=r"needs Ray, which is not installed.*pip install 'ray==2.60.0'"):
        import_ray()
    with pytest.raises(RunError, match="not installed"):
        RayLauncher(workspace).check()


# ---------------------------------------------------------------- what a fold asks for


CPU_NODE = {"address": "10.0.0.1", "cpus": 4.0, "gpus": 0.0}
GPU_NODE = {"address": "10.0.0.2", "cpus": 16.0, "gpus": 8.0}


def test_each_fold_asks_for_num_workers_plus_one_cpus_and_a_gpu_when_it_trains_on_cuda():
    assert fold_resources(_cfg(device="cpu"), [CPU_NODE], "a") == {"num_cpus": 3, "num_gpus": 0, "device": "cpu"}
    small = _cfg(device="cuda", train={"num_workers": 3})
    assert fold_resources(small, [CPU_NODE, GPU_NODE], "a") == {"num_cpus": 4, "num_gpus": 1, "device": "cuda"}
    assert fold_resources(_cfg(device="cuda:3"), [GPU_NODE], "a")["num_gpus"] == 1  # Ray picks the GPU
    assert fold_resources(_cfg(device="auto"), [CPU_NODE, GPU_NODE], "a")["device"] == "cuda"
    assert fold_resources(_cfg(device="auto"), [CPU_NODE], "a")["device"] == "cpu"


def test_a_fold_no_node_can_take_is_refused_with_what_to_change():
    with pytest.raises(RunError, match=r"asks for device 'cuda', but no node of the Ray cluster at HEAD:1 has a GPU"):
        fold_resources(_cfg(device="cuda"), [CPU_NODE], "HEAD:1")
    with pytest.raises(RunError, match=r"9 CPU\(s\) \(train.num_workers \+ 1 = 8 \+ 1\).* has 4 CPU\(s\)\. "
                                       r"Lower train.num_workers to at most 3"):
        fold_resources(_cfg(device="cpu", train={"num_workers": 8}), [CPU_NODE], "HEAD:1")


# ---------------------------------------------------------------- liveness, cancel routing


def _ray_status(fake_run, *, age_s: float, **fields) -> None:
    status = json.loads((fake_run / "status.json").read_text())
    stamp = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    status.update({"state": "running", "pid": None, "launcher": "ray", "updated_at": stamp,
                   "driver": "Ray actor run-x-abc on the cluster at 10.0.0.1:6379",
                   "ray": {"address": "10.0.0.1:6379", "namespace": "fold-studio", "actor": "run-x-abc"}, **fields})
    (fake_run / "status.json").write_text(json.dumps(status))


def test_a_ray_run_lives_by_its_drivers_heartbeat(fake_run):
    _ray_status(fake_run, age_s=1)
    status = effective_status(fake_run)
    assert status["state"] == "running" and status["alive"] and not status.get("error")

    _ray_status(fake_run, age_s=120)
    status = effective_status(fake_run)
    assert status["state"] == "failed" and not status["alive"] and status["raw_state"] == "running"
    assert status["error"].startswith("the run's driver (Ray actor run-x-abc on the cluster at 10.0.0.1:6379) "
                                      "has not reported for 120 s")

    _ray_status(fake_run, age_s=1, pid=2**22 + 12345)  # a local job took the run over: its pid decides
    assert effective_status(fake_run)["error"] == "the training process is gone; resume it"


def test_cancel_and_resume_go_to_the_backend_the_run_names(fake_run):
    _ray_status(fake_run, age_s=1, pid=12345)  # a local job owns it: the Ray launcher refuses to touch it
    with pytest.raises(RunError, match="trained by a local job \\(pid 12345\\), not on Ray"):
        RayLauncher(address="10.0.0.1:6379").cancel(fake_run)
    _ray_status(fake_run, age_s=120)
    launcher = launcher_for_run(fake_run)
    assert isinstance(launcher, RayLauncher) and launcher.address == "10.0.0.1:6379"
    prepare_resume(fake_run)  # a dead driver: resumable; no backend owns the run until the next submit
    assert isinstance(launcher_for_run(fake_run), LocalLauncher)
    assert not effective_status(fake_run)["alive"]
