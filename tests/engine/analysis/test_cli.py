"""End to end on the real tiny study (two runs trained on the demo dataset): analyze and submit via the CLI."""

import json
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _cli(*args, workspace):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args), "--workspace", str(workspace)],
                          capture_output=True, text=True, timeout=300)


def test_analyze_json_on_the_tiny_study(tiny_study):
    ids = [p.name for p in tiny_study.run_dirs]
    out = _cli("analyze", *ids, "--json", "--resamples", "200", workspace=tiny_study.workspace)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for kind in ("soft", "hard"):
        for metric in ("accuracy", "macro_f1"):
            assert 0.0 <= report["voting"]["holdout"][kind][metric] <= 1.0
    gains = report["tta"]["gain_per_view"]
    assert set(gains) == {"identity", "hflip"} and gains["identity"]["accuracy_gain"] == 0
    assert gains["hflip"]["accuracy_gain_low"] <= gains["hflip"]["accuracy_gain"] <= gains["hflip"]["accuracy_gain_high"]
    assert len(report["voting"]["oof"]["members"]) == 2  # across the two runs on OOF (they share a split)
    (ls,) = report["label_smoothing"]
    assert [r["label_smoothing"] for r in ls["runs"]] == [0.0, 0.1]
    assert report["ensembles"]["method"] == "exhaustive" and report["ensembles"]["top"]


def test_analyze_text_and_a_bad_run_id(tiny_study):
    out = _cli("analyze", tiny_study.run_dirs[0], "--resamples", "100", "--no-search", workspace=tiny_study.workspace)
    assert out.returncode == 0, out.stderr
    assert "Soft vs hard voting" in out.stdout and "TTA gain over identity" in out.stdout
    bad = _cli("analyze", "no-such-run", workspace=tiny_study.workspace)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no-such-run" in bad.stderr


def test_submit_matches_the_template_ids(tiny_study, demo_spec_path, tmp_path):
    ids = [p.name for p in tiny_study.run_dirs]
    out_csv = tmp_path / "sub.csv"
    out = _cli("submit", *ids, "--voting", "hard", "--tta", "mean", "--out", out_csv, workspace=tiny_study.workspace)
    assert out.returncode == 0, out.stderr
    template = pd.read_csv(demo_spec_path.parent / "sample_submission.csv", dtype=str)
    written = pd.read_csv(out_csv, dtype=str)
    assert list(written.columns) == ["id", "label"]
    assert written["id"].tolist() == template["id"].tolist()
    assert set(written["label"]) <= {str(i) for i in range(10)}
    record = json.loads(out_csv.with_suffix(".json").read_text())
    assert record["voting"] == "hard" and record["tta"] == "mean" and record["folds"] == [0, 1]
    assert record["views"] == ["identity", "hflip"] and record["expected"]["subset"] == "holdout"
    # the labels are right more often than chance on the hidden solution
    solution = pd.read_csv(demo_spec_path.parent / "solution.csv", dtype=str).set_index("id")["label"]
    assert (written.set_index("id")["label"] == solution.loc[written["id"]].to_numpy()).mean() > 0.3
