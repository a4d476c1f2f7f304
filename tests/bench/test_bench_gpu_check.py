"""bench/gpu_check.sh without CUDA, and the plugin that picks the CUDA tests it runs on a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.sh"


def _run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)


def test_without_cuda_it_says_so_and_exits_2_writing_nothing(tmp_path):
    out = tmp_path / "out"
    env = {"CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path / "unused"), "GPU_CHECK_CPU_SMOKE": "0"}
    proc = _run(str(out), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no CUDA device on this machine" in proc.stderr
    assert "torch.cuda.is_available() is False" in proc.stderr and "NVIDIA GPU" in proc.stderr
    assert not out.exists() and not (tmp_path / "unused").exists()  # nothing started, nothing written


def test_without_torch_it_names_the_python_it_tried(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")  # no site-packages: no torch
    fake.chmod(0o755)
    proc = _run(str(tmp_path / "out"), env={"PYTHON": str(fake)})
    assert proc.returncode == 2
    assert "no usable torch" in proc.stderr and "torch cannot be imported" in proc.stderr


def test_help_gives_the_device_command_and_a_bad_option_is_refused():
    proc = _run("--help")
    assert proc.returncode == 0
    assert 'bash bench/gpu_check.sh "$OUT"' in proc.stdout and 'carry:   [".whl", ".timm-src"]' in proc.stdout
    assert "--fetch-wheels" in proc.stdout
    bad = _run("--fast")
    assert bad.returncode == 2 and "unknown option '--fast'" in bad.stderr


def test_the_plugin_keeps_only_the_tests_skipped_for_want_of_cuda(tmp_path):
    (tmp_path / "test_mixed.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.skipif(True, reason="needs a CUDA GPU")
        def test_on_gpu():
            pass

        @pytest.mark.skipif(True, reason="inductor compiles for minutes on a CPU; runs on CUDA only")
        def test_compiled():
            pass

        @pytest.mark.skipif(True, reason="needs Windows")
        def test_elsewhere():
            pass

        def test_plain():
            pass
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_cuda_only", "-p", "no:cacheprovider",
                           "-q", "-rs", "test_mixed.py"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert "2 skipped, 2 deselected" in proc.stdout, proc.stdout
    assert "test_mixed.py:4: needs a CUDA GPU" in proc.stdout and "runs on CUDA only" in proc.stdout


def test_the_repository_has_cuda_tests_for_it_to_run():
    """The GPU check runs what `grep cuda` finds under tests/; at least the known CUDA tests are there."""
    files = subprocess.run(["grep", "-rlE", "--include=test_*.py", "cuda", "tests"], capture_output=True, text=True,
                           cwd=REPO).stdout.split()
    assert "tests/engine/training/test_training_fastpath.py" in files
    assert "tests/engine/explain/test_explain_cam.py" in files
