"""Unreadable images: the scan's corrupt files are left out of a run (and recorded), files that break later
are skipped by training (and counted), and the fold goes on."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import yaml
from dataset_builders import class_folders, save_rgb, tiny_run_config, truncate

from engine.data import open_dataset
from engine.data.exclusions import drop_unreadable_images, exclude_corrupt, exclusion_note
from engine.data.problems import Problem
from engine.errors import ConfigError, DatasetError
from engine.runs.store import read_predictions, read_split, read_status
from engine.training.config import load_run_configs
from engine.training.config import read_run_config as read_config
from engine.training.create import create_runs
from engine.training.fit import train_run


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_exclude_corrupt_is_a_pure_rule_over_manifest_and_problems():
    manifest = pd.DataFrame({"sample_id": ["a", "b", "c"], "path": ["/d/a.png", "/d/b.png", "/d/./c.png"],
                             "label": ["x", "y", "x"]})
    problems = [Problem("corrupt", "/d/c.png", "c is truncated"), Problem("tiny", "/d/a.png", "small"),
                Problem("corrupt", "/elsewhere/z.png", "not in this manifest")]
    kept, excluded = exclude_corrupt(manifest, problems)
    assert kept["sample_id"].tolist() == ["a", "b"] and kept.index.tolist() == [0, 1]
    assert excluded == [{"sample_id": "c", "path": "/d/./c.png", "reason": "c is truncated"}]
    assert exclude_corrupt(manifest, [])[0] is manifest
    note = exclusion_note(excluded * 7, limit=2)
    assert note.startswith("7 training image(s)") and "c is truncated" in note and "and 5 more" in note
    assert exclusion_note([]) is None


def test_a_corrupt_image_is_left_out_of_the_run_and_recorded(tmp_path, workspace, caplog):
    root = class_folders(tmp_path / "pets")
    truncate(root / "train" / "cat" / "3.png")
    dataset = open_dataset(root)
    assert len(dataset.manifest) == 16  # the manifest lists it: only the scan can tell it is corrupt

    with caplog.at_level(logging.WARNING, logger="engine"):
        (run_dir,) = create_runs(load_run_configs(tiny_run_config(root)), workspace=workspace)
    assert "1 training image(s) the scan could not read are left out" in caplog.text
    assert "'cat/3.png'" in caplog.text
    cfg = read_config(run_dir)
    (entry,) = cfg.excluded
    assert entry["sample_id"] == "cat/3.png" and entry["path"] == str(root / "train" / "cat" / "3.png")
    assert "corrupt or truncated" in entry["reason"]
    split = read_split(run_dir)
    assert len(split) == 15 and "cat/3.png" not in set(split["sample_id"])
    assert cfg.classes == ["cat", "dog"]


def test_the_check_reads_the_scan_cache(tmp_path, workspace, monkeypatch):
    root = class_folders(tmp_path / "pets")
    truncate(root / "train" / "dog" / "0.png")
    dataset = open_dataset(root)
    first = drop_unreadable_images(dataset, workspace=workspace)
    assert [e["sample_id"] for e in first.excluded] == ["dog/0.png"] and len(first.manifest) == 15

    import engine.data.scan as scan

    def no_reading(paths):
        raise AssertionError(f"a cached file was read again: {paths[:3]}")

    monkeypatch.setattr(scan, "_scan_chunk", no_reading)
    monkeypatch.setattr(scan, "scan_file", no_reading)
    again = drop_unreadable_images(dataset, workspace=workspace)
    assert again.excluded == first.excluded


def test_a_class_that_loses_every_image_is_refused_by_name(tmp_path, workspace):
    root = class_folders(tmp_path / "pets", per_class=4)
    for i in range(4):
        truncate(root / "train" / "dog" / f"{i}.png")
    with pytest.raises(ConfigError, match="'dog' has 0"):
        create_runs(load_run_configs(tiny_run_config(root)), workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_no_readable_image_at_all_is_a_dataset_error(tmp_path, workspace):
    root = class_folders(tmp_path / "pets", per_class=2)
    for p in (root / "train").rglob("*.png"):
        truncate(p)
    with pytest.raises(DatasetError, match="No training image of dataset 'pets' can be read"):
        drop_unreadable_images(open_dataset(root), workspace=workspace)


def test_train_cli_trains_a_dataset_with_a_corrupt_image(tmp_path, workspace, capsys):
    from engine.cli import main

    root = class_folders(tmp_path / "pets")
    truncate(root / "train" / "cat" / "5.png")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_run_config(root)))
    assert main(["train", str(config), "--workspace", str(workspace)]) == 0  # exit 1 and a traceback before
    (run_id,) = capsys.readouterr().out.split()
    run_dir = workspace / "runs" / run_id
    assert read_status(run_dir)["state"] == "done"
    assert [e["sample_id"] for e in read_config(run_dir).excluded] == ["cat/5.png"]
    assert "cat/5.png" not in set(read_predictions(run_dir, "oof")["sample_id"])
    assert len(read_predictions(run_dir, "oof")) == 15


# ---------------------------------------------------------------- images that break after the scan


@pytest.mark.parametrize("data_cache, num_workers", [(False, 0), (True, 2)], ids=["decoding", "cache+workers"])
def test_an_image_that_breaks_after_the_scan_is_skipped_and_counted(tmp_path, workspace, caplog, data_cache,
                                                                   num_workers):
    root = class_folders(tmp_path / "pets")
    save_rgb(root / "test" / "t0.png", 7, size=(16, 16))
    save_rgb(root / "test" / "t1.png", 8, size=(16, 16))
    save_rgb(root / "test" / "t2.png", 9, size=(16, 16))
    cfg = tiny_run_config(root, data_cache=data_cache, num_workers=num_workers)
    (run_dir,) = create_runs(load_run_configs(cfg), workspace=workspace)  # the scan sees good files
    assert read_config(run_dir).excluded == []
    broken = [root / "train" / "dog" / "2.png", root / "test" / "t1.png"]
    for p in broken:
        truncate(p)

    with caplog.at_level(logging.WARNING, logger="engine"):
        train_run(run_dir, device="cpu")
    status = read_status(run_dir)
    assert status["state"] == "done"
    fold_of = read_split(run_dir).set_index("sample_id")["fold"]
    val_fold = int(fold_of["dog/2.png"])
    for fold, entry in status["folds"].items():
        expected = {str(p) for p in broken} if int(fold) == val_fold else {str(broken[1])}
        # every fold predicts the test image; the training image breaks in one fold's validation
        # set and in the other fold's training set
        assert set(entry["skipped_images"]) >= expected, (fold, entry)
        assert entry["state"] == "done"
    assert str(broken[0]) in caplog.text and "skipped" in caplog.text
    if data_cache:
        assert status["image_cache"]["unreadable"] == 2

    oof = read_predictions(run_dir, "oof").set_index("sample_id")
    assert (oof.loc["dog/2.png", "logit_0"], oof.loc["dog/2.png", "logit_1"]) == (0.0, 0.0)  # uniform: no opinion
    assert np.abs(oof.drop(index="dog/2.png")[["logit_0", "logit_1"]].to_numpy()).sum() > 0
    test = read_predictions(run_dir, "test")
    assert set(test["sample_id"]) == {"t0", "t1", "t2"}  # one row per test image: a submission needs them all
    assert (test.loc[test["sample_id"] == "t1", ["logit_0", "logit_1"]].to_numpy() == 0).all()


def test_a_dataset_folder_that_vanishes_fails_the_fold_with_a_reason(tmp_path, workspace):
    root = class_folders(tmp_path / "pets")
    (run_dir,) = create_runs(load_run_configs(tiny_run_config(root, data_cache=False)), workspace=workspace)
    for p in (root / "train").rglob("*.png"):
        truncate(p)
    with pytest.raises(DatasetError, match="cannot be read"):
        train_run(run_dir, device="cpu")
    assert read_status(run_dir)["state"] == "failed"
