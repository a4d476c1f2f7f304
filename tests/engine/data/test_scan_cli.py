"""``python -m engine scan`` through a subprocess: the demo dataset and a folder of mixed-format images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_builders import save_rgb, write_forms

REPO = Path(__file__).resolve().parents[3]


def run_engine(*args, workspace: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, FOLD_STUDIO_WORKSPACE=str(workspace))
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """A folder-layout dataset of every image form, with known problems."""
    root = tmp_path_factory.mktemp("mixed")
    forms = write_forms(root / "forms")
    cats = ["rgb_jpeg", "gray16_png", "rgba_png", "palette_png", "cmyk_jpeg", "truncated_jpeg"]
    dogs = ["rgb_png", "rgb16_png", "palette_transparent_gif", "gray_png", "exif_rotated_jpeg", "bilevel_png",
            "webp", "big_jpeg", "garbage_jpeg", "truncated_png"]
    for label, names in (("cat", cats), ("dog", dogs)):
        (root / "train" / label).mkdir(parents=True)
        for name in names:
            shutil.copyfile(forms[name], root / "train" / label / forms[name].name)
    shutil.rmtree(root / "forms")
    shutil.copyfile(root / "train" / "cat" / "rgb.jpg", root / "train" / "cat" / "rgb_copy.jpg")
    save_rgb(root / "train" / "cat" / "tiny.png", 40, size=(8, 8))
    save_rgb(root / "train" / "cat" / "strip.png", 41, size=(200, 20))
    (root / "train" / "dog" / "notes.txt").write_text("labels by Ann")
    (root / "test").mkdir()
    shutil.copyfile(root / "train" / "dog" / "rgb.png", root / "test" / "leak.png")
    save_rgb(root / "test" / "fresh.png", 60)
    return root


EXPECTED_PROBLEMS = {  # (kind, path relative to the dataset folder)
    ("not_image", "train/dog/notes.txt"),
    ("corrupt", "train/cat/truncated.jpg"), ("corrupt", "train/dog/garbage.jpg"), ("corrupt", "train/dog/truncated.png"),
    ("exact_duplicate", "train/cat/rgb_copy.jpg"),
    # rgb16.png is rgb.jpg's picture at 16 bits (write_forms): the same image in two formats and two classes.
    ("near_duplicate", "train/dog/rgb16.png"), ("conflicting_labels", "train/cat/rgb.jpg"),
    ("train_test_duplicate", "test/leak.png"),
    ("tiny", "train/cat/tiny.png"), ("extreme_aspect", "train/cat/strip.png"),
    ("odd_mode", "train/cat/gray16.png"), ("odd_mode", "train/cat/rgba.png"), ("odd_mode", "train/cat/palette.png"),
    ("odd_mode", "train/cat/cmyk.jpg"), ("odd_mode", "train/dog/rgb16.png"),
    ("odd_mode", "train/dog/palette_transparent.gif"), ("odd_mode", "train/dog/bilevel.png"),
    ("small_class", "cat"), ("small_class", "dog"),
}


def test_scan_json_on_a_mixed_format_folder(mixed_folder, tmp_path):
    out = run_engine("scan", mixed_folder, "--json", "--folds", "20", "--workers", "2", workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["layout"] == "folder" and (mixed_folder / "dataset.yaml").is_file()
    assert report["num_images"] == 19 and report["num_test_images"] == 2
    assert report["num_classes"] == 2 and report["class_counts"] == {"cat": 9, "dog": 10}
    assert report["imbalance_ratio"] == pytest.approx(10 / 9, abs=1e-4)
    assert report["formats"] == {"PNG": 12, "JPEG": 6, "GIF": 1, "WEBP": 1}  # garbage.jpg has no format
    for problem in report["problems"]:
        assert set(problem) == {"kind", "path", "message"} and problem["message"]
    found = {(p["kind"], p["path"]) for p in report["problems"]}
    assert found == EXPECTED_PROBLEMS, found ^ EXPECTED_PROBLEMS
    assert report["problem_counts"]["corrupt"] == 3 and report["problem_counts"]["small_class"] == 2
    assert report["scan"]["rescanned"] == 21

    again = json.loads(run_engine("scan", mixed_folder, "--json", workspace=tmp_path).stdout)
    assert (again["scan"]["rescanned"], again["scan"]["cached"]) == (0, 21)
    assert {(p["kind"], p["path"]) for p in again["problems"]} == EXPECTED_PROBLEMS - {("small_class", "cat"),
                                                                                        ("small_class", "dog")}


def test_scan_text_names_every_problem(mixed_folder, tmp_path):
    out = run_engine("scan", mixed_folder, workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Images: 19 training in 2 classes, 2 test" in text
    assert "Class counts: cat: 9, dog: 10" in text
    for kind, path in EXPECTED_PROBLEMS - {("small_class", "cat"), ("small_class", "dog")}:
        assert f"    {path}: " in text, (kind, path)
        assert f"  {kind} (" in text


def test_scan_on_the_demo_dataset(demo_spec_path, tmp_path):
    out = run_engine("scan", demo_spec_path, "--json", "--folds", "145", workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["name"], report["num_images"], report["num_test_images"], report["num_classes"]) == \
        ("digits-demo", 1438, 359, 10)
    assert sum(report["class_counts"].values()) == 1438 and list(report["class_counts"]) == [str(i) for i in range(10)]
    small = sorted(p["path"] for p in report["problems"] if p["kind"] == "small_class")
    assert small == sorted(k for k, v in report["class_counts"].items() if v < 145) and small
    assert report["modes"] == {"RGB": 1797} and report["image_sizes"]["width"]["max"] == 32
    assert not any(p["kind"] == "corrupt" for p in report["problems"])
    assert 0 < report["normalization"]["mean"][0] < 1
    text = run_engine("scan", demo_spec_path, workspace=tmp_path)
    assert text.returncode == 0 and "Dataset 'digits-demo' (csv layout)" in text.stdout
    assert "Scan: 0 image(s) read, 1,797 from the cache" in text.stdout


@pytest.mark.parametrize("args, message", [
    (["scan", "/no/such/dataset"], "does not exist"),
    (["scan", "{demo}", "--folds", "1"], "--folds must be at least 2"),
])
def test_scan_bad_input_exits_2_with_a_message(args, message, demo_spec_path, tmp_path):
    out = run_engine(*[a.format(demo=demo_spec_path) for a in args], workspace=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.stderr



def test_scan_says_which_column_holds_the_labels_and_why(tmp_path, capsys):
    import pandas as pd

    from engine.cli import main

    root = tmp_path / "pets"
    for i in range(8):
        save_rgb(root / "images" / f"{i}.png", i, size=(16, 16))
    pd.DataFrame({"image": [f"images/{i}.png" for i in range(8)], "species": ["cat", "dog"] * 4,
                  "notes": [f"found by the volunteer team on day {i} of the survey" for i in range(8)]}
                 ).to_csv(root / "train.csv", index=False)
    assert main(["scan", str(root), "--json", "--workspace", str(tmp_path / "ws")]) == 0
    label = json.loads(capsys.readouterr().out)["label"]
    assert label["column"] == "species" and label["reason"].startswith("chosen by layout detection: no column has a "
                                                                       "usual label name")
    assert "not 'notes': it looks like free text" in label["reason"]
    assert main(["scan", str(root), "--workspace", str(tmp_path / "ws")]) == 0
    text = capsys.readouterr().out
    assert "Labels: column 'species', chosen by layout detection: " in text
    assert main(["scan", str(root / "dataset.yaml"), "--workspace", str(tmp_path / "ws")]) == 0
    assert "Labels: column 'species', chosen by layout detection" in capsys.readouterr().out


def test_scan_names_a_one_class_dataset(tmp_path, capsys):
    from engine.cli import main

    for i in range(4):
        save_rgb(tmp_path / "cats" / "train" / "cat" / f"{i}.png", i, size=(16, 16))
    assert main(["scan", str(tmp_path / "cats"), "--json", "--folds", "2", "--workspace", str(tmp_path / "ws")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problem_counts"] == {"one_class": 1}  # once, though the --folds check also sees it
    assert report["label"] == {"column": None, "reason": "the name of each image's class sub-folder"}
