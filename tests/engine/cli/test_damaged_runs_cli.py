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
