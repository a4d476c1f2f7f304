"""One offline policy: the engine's own process and every job it starts get the same environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.offline import offline_environment

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_and_its_jobs_share_one_offline_policy():
    code = ("import json, os, engine; from engine.jobs.runner import job_environment; env = job_environment(); "
            "print(json.dumps({k: [os.environ[k], env[k]] for k in ('HF_HUB_OFFLINE', 'NO_ALBUMENTATIONS_UPDATE')}))")
    # a user's HF_HUB_OFFLINE=0 met two policies before: kept in the process, overridden in the job
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("NO_ALBUMENTATIONS_UPDATE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    seen = json.loads(out.stdout)
    assert seen == {key: [value, value] for key, value in offline_environment(env).items()}
