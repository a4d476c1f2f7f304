"""Device resolution, the multi-GPU fold plan and the per-device lock — all on CPU, GPUs faked by count."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError, RunError
from engine.jobs.devices import (
    acquire_any,
    cuda_device_count,
    device_lock,
    locks_dir,
    physical_gpu_id,
    plan_fold_assignment,
    resolve_devices,
    validate_device,
)


@pytest.mark.parametrize(
    ("folds", "devices", "expected"),
    [
        ([0, 1, 2, 3, 4], ["cuda:0", "cuda:1"], {"cuda:0": [0, 2, 4], "cuda:1": [1, 3]}),
        (
            [0, 1, 2],
            ["cuda:0", "cuda:1", "cuda:2", "cuda:3"],
            {"cuda:0": [0], "cuda:1": [1], "cuda:2": [2], "cuda:3": []},
        ),
        ([3, 4], ["cpu"], {"cpu": [3, 4]}),
        ([], ["cuda:0", "cuda:1"], {"cuda:0": [], "cuda:1": []}),
    ],
)
def test_plan_fold_assignment_spreads_round_robin(folds, devices, expected):
    plan = plan_fold_assignment(folds, devices)
    assert plan == expected
    assert sorted(f for fs in plan.values() for f in fs) == sorted(folds)  # every fold exactly once


def test_plan_fold_assignment_refuses_no_device_or_a_repeat():
    with pytest.raises(ValueError, match="at least one device"):
        plan_fold_assignment([0], [])
    with pytest.raises(ValueError, match="twice"):
        plan_fold_assignment([0, 1], ["cuda:0", "cuda:0"])


@pytest.mark.parametrize(
    ("device", "gpus", "expected"),
    [
        ("auto", 0, ["cpu"]),
        ("auto", 1, ["cuda:0"]),
        ("auto", 2, ["cuda:0", "cuda:1"]),  # the job takes the first free GPU
        ("cpu", 4, ["cpu"]),
        ("cuda", 1, ["cuda:0"]),
        ("cuda", 3, ["cuda:0", "cuda:1", "cuda:2"]),  # one process per GPU
        ("cuda:1", 2, ["cuda:1"]),
        (" CUDA:0 ", 1, ["cuda:0"]),
    ],
)
def test_resolve_devices(device, gpus, expected):
    assert resolve_devices(device, gpu_count=gpus) == expected


def test_resolve_devices_refuses_missing_gpus_with_a_message():
    with pytest.raises(RunError, match="no CUDA GPU is visible"):
        resolve_devices("cuda", gpu_count=0)
    with pytest.raises(RunError, match="'cuda:2'.*only 2 CUDA GPU"):
        resolve_devices("cuda:2", gpu_count=2)
    with pytest.raises(ConfigError, match="'device' parameter"):
        validate_device("gpu0")


def test_physical_gpu_id_honours_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert physical_gpu_id("cuda:1") == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert physical_gpu_id("cuda:1") == "1"


def test_cuda_device_count_is_an_int():
    assert cuda_device_count() >= 0


def test_device_lock_is_exclusive_and_names_its_holder(tmp_path):
    run_dir = tmp_path / "ws" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    assert locks_dir(run_dir) == tmp_path / "ws" / "locks"
    first, second = device_lock(run_dir, "cpu"), device_lock(run_dir, "cpu")
    assert first.try_acquire("run A")
    assert not second.try_acquire("run B")  # flock: a second open file description conflicts, even in-process
    assert second.holder() == "run A"
    waits = []
    stop_after = iter([False, True])
    got = acquire_any([second], "run B", on_wait=waits.append, should_stop=lambda: next(stop_after), poll_s=0.01)
    assert got is None and waits == ["waiting for cpu (in use by run A)"]
    first.release()
    assert acquire_any([second], "run B") is second
    second.release()


def test_acquire_any_takes_the_first_free_device(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    busy = device_lock(run_dir, "cuda:0")
    assert busy.try_acquire("other run")
    got = acquire_any([device_lock(run_dir, "cuda:0"), device_lock(run_dir, "cuda:1")], "me")
    assert got is not None and got.device == "cuda:1"
    got.release()
    busy.release()
