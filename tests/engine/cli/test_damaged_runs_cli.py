"""The run commands on a workspace with a damaged run: the intact runs still listed, a clear message for the
damaged one, never a traceback (in-process: the same code path as ``python -m engine``)."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from tests.engine.runs.damaged_runs import DAMAGED_STATUS, WHAT_IS_WRONG, make_run


@pytest.mark.parametrize("kind", list(DAMAGED_STATUS))
def test_runs_lists_every_run_and_status_resume_cancel_name_the_damage(tmp_path, capsys, kind):
    ws = tmp_path / "ws"
    make_run(ws, "run-intact")
    make_run(ws, "run-broken", status=DAMAGED_STATUS[kind])

    assert main(["runs", "--workspace", str(ws)]) == 0
    out = capsys.readouterr()
    lines = {line.split()[0]: line.split()[1] for line in out.out.splitlines()[1:]}
    assert lines == {"run-intact": "queued", "run-broken": "damaged"}
    assert "damaged: run-broken: Run 'run-broken' is damaged" in out.err and WHAT_IS_WRONG[kind] in out.err

    assert main(["runs", "--json", "--workspace", str(ws)]) == 0
    rows = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["run-broken"]["state"] == "damaged" and "status.json" in rows["run-broken"]["error"]
    assert rows["run-intact"]["state"] == "queued" and rows["run-intact"]["error"] is None

    for command in (["status", "run-broken"], ["resume", "run-broken"], ["cancel", "run-broken"],
                    ["resume", "run-broken", "--detach"]):
        assert main([*command, "--workspace", str(ws)]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: Run 'run-broken' is damaged"), (command, err)
        assert "status.json" in err and WHAT_IS_WRONG[kind] in err and "Traceback" not in err
    assert main(["status", "run-intact", "--workspace", str(ws)]) == 0
    assert capsys.readouterr().out.startswith("run run-intact: queued")


@pytest.mark.slow
def test_a_finished_folds_deleted_weights_are_named_refused_by_predict_and_trained_again_by_resume(
        tmp_path, workspace, capsys):
    import hashlib
    import sys
    from pathlib import Path

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from dataset_builders import class_folders, tiny_run_config

    from engine.runs import read_config, read_status

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(tiny_run_config(class_folders(tmp_path / "pets"))))
    ws = ["--workspace", str(workspace)]
    assert main(["train", str(tmp_path / "run.yaml"), *ws]) == 0
    (run_id,) = capsys.readouterr().out.split()
    run_dir = workspace / "runs" / run_id
    lost = run_dir / "weights" / "fold1.safetensors"
    lost.unlink()

    def fold0() -> dict[str, str]:
        files = [run_dir / "weights" / "fold0.safetensors", *(run_dir / "predictions").glob("fold0_*")]
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    assert main(["runs", *ws]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[1].split()[:2] == [run_id, "done"]
    assert f"done: {run_id}: fold(s) [1] are done but a file is missing: {str(lost)!r}" in out.err
    assert main(["status", run_id, *ws]) == 0
    assert "missing: fold(s) [1] are done" in capsys.readouterr().out

    # predict cannot make fold 1's predictions again: refused by name, nothing rewritten
    assert main(["predict", run_id, "--tta", "identity,hflip", *ws]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Run {run_id!r}: fold(s) [1] are done but their weights file is missing")
    assert str(lost) in err and f"python -m engine resume {run_id}" in err and "--folds 0" in err
    # the other fold on its own: its predictions change views, the config keeps describing fold 1's
    assert main(["predict", run_id, "--tta", "identity,hflip", "--folds", "0", *ws]) == 0
    capsys.readouterr()
    assert read_config(run_dir)["tta_views"] == ["identity"]

    kept = fold0()
    assert main(["resume", run_id, *ws]) == 0  # trains fold 1 again; fold 0 is kept as it is
    capsys.readouterr()
    status = read_status(run_dir)
    assert status["state"] == "done" and lost.is_file()
    assert main(["runs", "--json", *ws]) == 0
    assert json.loads(capsys.readouterr().out)[0]["error"] is None
    assert fold0() == kept
