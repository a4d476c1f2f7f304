"""The job's bookkeeping (states, heartbeat, device queue, errors, fold queue) with the training step faked.

The real training loop is exercised by the job tests with subprocesses (test_job_processes.py);
here ``engine.jobs.runner._train`` is replaced so each case takes milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from engine.jobs import runner
from engine.jobs.devices import device_lock
from engine.jobs.liveness import seconds_since
from engine.runs.store import read_status


def test_a_job_that_trains_ends_done(fake_run, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "_train", lambda run_dir, **kw: calls.append(kw))
    assert runner.run_job(fake_run) == "done"
    status = read_status(fake_run)
    assert status["state"] == "done" and status["error"] is None and status["message"] is None
    assert status["pid"] == os.getpid() and status["device"] == "cpu"
    assert status["started_at"] and status["finished_at"]
    assert calls[0]["device"] == "cpu" and calls[0]["folds"] is None


def test_a_job_that_raises_ends_failed_with_the_last_line_and_a_hint(fake_run, monkeypatch):
    def boom(run_dir, **kw):
        raise ValueError("the batch went sideways")

    monkeypatch.setattr(runner, "_train", boom)
    assert runner.run_job(fake_run) == "failed"
    status = read_status(fake_run)
    assert status["state"] == "failed"
    assert status["error"].startswith("ValueError: the batch went sideways")
    assert "train.log" in status["error"] and "resume" in status["error"]


def test_error_text_hints():
    oom = runner.error_text(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), runner.Path("/r"))
    assert "batch_size" in oom
    missing = runner.error_text(FileNotFoundError(2, "No such file", "/w.pth"), runner.Path("/r"))
    assert "w.pth" in missing and "paths" in missing


def test_sigterm_stops_at_the_next_batch_and_marks_cancelled(fake_run, monkeypatch):
    def train(run_dir, *, should_stop, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # what `cancel` sends
        for _batch in range(1000):
            if should_stop():
                # the loop may notice dead DataLoader workers first: any error after the request is the cancel
                raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated")
            time.sleep(0.01)
        raise AssertionError("should_stop never turned true")

    monkeypatch.setattr(runner, "_train", train)
    before = signal.getsignal(signal.SIGTERM)
    assert runner.run_job(fake_run) == "cancelled"
    assert read_status(fake_run)["state"] == "cancelled" and read_status(fake_run)["error"] is None
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_a_second_job_on_the_same_device_waits_in_the_queue(fake_run, monkeypatch):
    monkeypatch.setattr(runner, "_train", lambda run_dir, **kw: None)
    held = device_lock(fake_run, "cpu")
    assert held.try_acquire("run other (pid 1)")
    result = {}
    job = threading.Thread(target=lambda: result.setdefault("state", runner.run_job(fake_run)))
    job.start()
    deadline = time.monotonic() + 10
    while "waiting" not in str(read_status(fake_run).get("message")) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = read_status(fake_run)
    assert status["state"] == "queued"
    assert status["message"] == "waiting for cpu (in use by run other (pid 1))"
    held.release()
    job.join(timeout=10)
    assert result["state"] == "done" and read_status(fake_run)["state"] == "done"


def test_heartbeat_refreshes_updated_at(fake_run):
    status = json.loads((fake_run / "status.json").read_text())
    status["updated_at"] = "2020-01-01T00:00:00+00:00"
    (fake_run / "status.json").write_text(json.dumps(status))
    with runner.Heartbeat([fake_run], period=0.05):
        time.sleep(0.3)
    assert seconds_since(read_status(fake_run)["updated_at"]) < 5


def test_fold_queue_hands_each_fold_to_exactly_one_claimer(fake_run):
    runner.write_fold_queue(fake_run, list(range(40)))
    claimed: dict[str, list[int]] = {"cuda:0": [], "cuda:1": [], "cuda:2": []}

    def worker(device):
        while (fold := runner.claim_next_fold(fake_run, device)) is not None:
            claimed[device].append(fold)

    threads = [threading.Thread(target=worker, args=(d,)) for d in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f for fs in claimed.values() for f in fs) == list(range(40))
    runner.clear_fold_queue(fake_run)
    assert runner.claim_next_fold(fake_run, "cuda:0") is None


def test_run_folds_reads_the_split(fake_run, monkeypatch):
    assert runner.run_folds(fake_run) == [0, 1, 2]
    monkeypatch.setattr("engine.runs.fold_is_complete", lambda run_dir, fold: fold == 0)
    assert runner.unfinished_folds(fake_run) == [1, 2]


def test_a_gpu_worker_is_pinned_to_its_gpu(fake_run, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    cmd, env = runner._worker_command(fake_run, "cuda:1", device_lock(fake_run, "cuda:1"))
    assert env["CUDA_VISIBLE_DEVICES"] == "5"  # the second visible GPU, whatever the machine numbers it
    assert cmd[cmd.index("--device") + 1] == "cuda:0" and cmd[cmd.index("--device-name") + 1] == "cuda:1"
    assert cmd[cmd.index("--lock-file") + 1].endswith("locks/cuda-5.lock")  # the same lock a one-GPU job takes
    assert env["HF_HUB_OFFLINE"] == "1"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_picks_a_gpu_when_there_is_one():
    from engine.jobs.devices import resolve_devices

    assert resolve_devices("auto")[0] == "cuda:0"
