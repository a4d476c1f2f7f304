"""Label overrides: written beside the spec, never touching the data, applied by the manifest, recorded by runs;
and the noisy copy of a dataset they are tried on."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from engine.data import open_dataset
from engine.data.noise import inject_label_noise, read_label_noise
from engine.data.overrides import (
    overrides_from_record,
    overrides_path,
    read_overrides,
    remove_override,
    set_override,
)
from engine.errors import DatasetError


@pytest.fixture(scope="module")
def noisy_copy(demo_spec_path, tmp_path_factory):
    """The demo dataset with 10% of its labels flipped, copied once for this module."""
    return inject_label_noise(demo_spec_path, tmp_path_factory.mktemp("noisy") / "digits", fraction=0.1, seed=0)


@pytest.fixture
def spec(noisy_copy):
    """The noisy copy's spec, with no overrides file (each test starts clean)."""
    overrides_path(noisy_copy.spec_path).unlink(missing_ok=True)
    yield noisy_copy.spec_path
    overrides_path(noisy_copy.spec_path).unlink(missing_ok=True)


def test_label_noise_flips_a_seeded_share_to_other_classes(demo_spec_path, noisy_copy, tmp_path):
    clean = open_dataset(demo_spec_path).manifest.set_index("sample_id")["label"]
    noisy = open_dataset(noisy_copy.spec_path, overrides=None).manifest.set_index("sample_id")["label"]
    changed = noisy[noisy != clean.loc[noisy.index]]
    assert len(changed) == round(0.1 * len(clean)) == len(noisy_copy.flipped)
    truth = read_label_noise(noisy_copy.spec_path).set_index("sample_id")
    assert set(changed.index) == set(truth.index)
    assert (truth.loc[changed.index, "given_label"] == changed).all()
    assert (truth.loc[changed.index, "true_label"] == clean.loc[changed.index]).all()
    again = inject_label_noise(demo_spec_path, tmp_path / "again", fraction=0.1, seed=0)
    pd.testing.assert_frame_equal(again.flipped, noisy_copy.flipped)  # same seed, same flips
    with pytest.raises(DatasetError, match="exists"):
        inject_label_noise(demo_spec_path, tmp_path / "again", fraction=0.1)
    with pytest.raises(DatasetError, match=r"The 'fraction' parameter must be in \(0, 1\)"):
        inject_label_noise(demo_spec_path, tmp_path / "x", fraction=1.5)


def test_decisions_go_beside_the_spec_and_never_touch_the_data(spec):
    csv_before = (spec.parent / "train.csv").read_bytes()
    raw = open_dataset(spec, overrides=None)
    a, b, c = raw.manifest["sample_id"].iloc[:3]
    given_b = raw.manifest["label"].iloc[1]
    new_b = next(x for x in raw.classes if x != given_b)
    set_override(spec, a, "exclude", note="blurry")
    set_override(spec, b, "relabel", label=new_b, given_label=given_b, classes=raw.classes)
    set_override(spec, c, "keep")
    path = overrides_path(spec)
    assert path == spec.parent / "dataset.overrides.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["format_version"] == 1 and [o["action"] for o in data["overrides"]] == ["exclude", "relabel", "keep"]
    assert (spec.parent / "train.csv").read_bytes() == csv_before

    dataset = open_dataset(spec)
    m = dataset.manifest.set_index("sample_id")
    assert a not in m.index and len(m) == len(raw.manifest) - 1
    assert m.at[b, "label"] == new_b and m.at[b, "label_index"] == raw.classes.index(new_b)
    assert dataset.classes == raw.classes
    applied = dataset.overrides
    assert list(applied.excluded["sample_id"]) == [a] and applied.kept == 1
    assert applied.relabelled.iloc[0].to_dict() == {"sample_id": b, "label": new_b, "given_label": given_b}
    assert applied.summary() == "1 excluded, 1 relabelled, 1 confirmed"

    # a later decision replaces the earlier one; removing it gives the file's label back
    set_override(spec, a, "keep")
    assert a in open_dataset(spec).manifest["sample_id"].values
    remove_override(spec, b)
    assert open_dataset(spec).manifest.set_index("sample_id").at[b, "label"] == given_b
    assert len(read_overrides(spec)) == 2


def test_a_run_record_reapplies_exactly_what_it_trained_with(spec):
    raw = open_dataset(spec, overrides=None)
    ids = raw.manifest["sample_id"]
    set_override(spec, ids.iloc[5], "exclude")
    set_override(spec, ids.iloc[6], "relabel", label="0" if raw.manifest["label"].iloc[6] != "0" else "1")
    record = open_dataset(spec).overrides.record()
    assert record["excluded"] == [ids.iloc[5]] and list(record["relabelled"]) == [ids.iloc[6]]
    assert record["file"] == str(overrides_path(spec)) and len(record["digest"]) == 16
    set_override(spec, ids.iloc[7], "exclude")  # decided after the run was created
    again = open_dataset(spec, overrides=record)
    assert ids.iloc[7] in again.manifest["sample_id"].values and ids.iloc[5] not in again.manifest["sample_id"].values
    pd.testing.assert_frame_equal(again.manifest, open_dataset(spec, overrides=overrides_from_record(record)).manifest)
    assert open_dataset(spec, overrides=None).overrides is None


def test_entries_that_cannot_apply_are_skipped_and_named(spec):
    first = open_dataset(spec, overrides=None).manifest["sample_id"].iloc[0]
    overrides_path(spec).write_text("format_version: 1\noverrides:\n  - {sample_id: no/such.png, action: exclude}\n"
                                    f"  - {{sample_id: '{first}', action: relabel, label: giraffe}}\n")
    applied = open_dataset(spec).overrides
    assert applied.changes == 0 and len(applied.skipped) == 2
    assert "'no/such.png' is not a training sample" in applied.skipped[0]
    assert "'giraffe' is not a class" in applied.skipped[1]


@pytest.mark.parametrize(("content", "match"), [
    ("format_version: 2\noverrides: []\n", "format_version 2"),
    ("overrides:\n  - {sample_id: a, action: delete}\n", r"entry 1: the 'action' field must be one of"),
    ("overrides:\n  - {sample_id: a, action: relabel}\n", "needs a 'label'"),
    ("overrides:\n  - {action: keep}\n", "entry 1 has no sample_id"),
    ("overrides:\n  - {sample_id: a, action: keep, colour: red}\n", r"unknown field\(s\) \['colour'\]"),
    ("overrides: [\n", "not valid YAML"),
])
def test_a_bad_overrides_file_is_refused_naming_what_is_wrong(spec, content, match):
    overrides_path(spec).write_text(content)
    with pytest.raises(DatasetError, match=match):
        open_dataset(spec)


def test_bad_decisions_are_refused_before_anything_is_written(spec):
    classes = open_dataset(spec, overrides=None).classes
    with pytest.raises(DatasetError, match=r"The 'action' parameter must be a str among \['keep', 'exclude', "):
        set_override(spec, "x", "drop")
    with pytest.raises(DatasetError, match=r"The 'label' parameter must be one of the dataset's classes"):
        set_override(spec, "x", "relabel", label="giraffe", classes=classes)
    with pytest.raises(DatasetError, match="already labelled '3'"):
        set_override(spec, "x", "relabel", label="3", given_label="3", classes=classes)
    assert not overrides_path(spec).exists()


def test_runs_record_the_overrides_and_train_with_them_even_after_the_file_changes(spec, workspace):
    from engine.runs.store import read_split
    from engine.training.config import load_run_configs
    from engine.training.config import read_run_config as read_config
    from engine.training.context import _tables
    from engine.training.create import create_runs

    raw = open_dataset(spec, overrides=None)
    first, second = raw.manifest["sample_id"].iloc[0], raw.manifest["sample_id"].iloc[1]
    set_override(spec, first, "exclude")
    (run_dir,) = create_runs(load_run_configs({"dataset": str(spec), "model": {"name": "test_resnet"}, "image_size": 32,
                                               "split": {"k": 2}, "device": "cpu"}), workspace=workspace)
    cfg = read_config(run_dir)
    assert cfg.label_overrides["excluded"] == [first]
    assert first not in set(read_split(run_dir)["sample_id"])
    set_override(spec, second, "exclude")  # after creation: the run must not lose this sample
    samples, _ = _tables(cfg, read_split(run_dir))
    assert second in set(samples["sample_id"]) and len(samples) == len(raw.manifest) - 1


def test_overrides_cli(spec, capsys):
    from engine.cli import main

    manifest = open_dataset(spec, overrides=None).manifest
    a, b = manifest["sample_id"].iloc[:2]
    other = "1" if manifest["label"].iloc[1] != "1" else "2"
    assert main(["overrides", str(spec), "--exclude", a, "--relabel", b, other, "--note", "cli"]) == 0
    out = capsys.readouterr().out
    assert "1 excluded, 1 relabelled, 0 kept" in out and a in out
    assert main(["overrides", str(spec), "--remove", a, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"keep": 0, "exclude": 0, "relabel": 1} and data["overrides"][0]["note"] == "cli"
    assert main(["overrides", str(spec), "--exclude", "nope.png"]) == 2
    assert "not training samples" in capsys.readouterr().err


def test_label_noise_cli(demo_spec_path, tmp_path, capsys):
    from engine.cli import main

    assert main(["label-noise", str(demo_spec_path), str(tmp_path / "noisy"), "--fraction", "0.05", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "72 label(s) flipped" in out and (tmp_path / "noisy" / "label_noise.csv").is_file()
    assert len(read_label_noise(tmp_path / "noisy" / "dataset.yaml")) == 72


def test_folder_layout_cannot_get_label_noise(tmp_path):
    from PIL import Image

    from engine.data.spec import DatasetSpec, TrainSpec, write_spec

    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / label / "a.png")
    spec = write_spec(DatasetSpec(name="pets", layout="folder", train=TrainSpec(images="images")),
                      tmp_path / "dataset.yaml")
    with pytest.raises(DatasetError, match="layout 'folder'; label noise is injected into CSV-layout datasets only"):
        inject_label_noise(spec, tmp_path / "noisy")
