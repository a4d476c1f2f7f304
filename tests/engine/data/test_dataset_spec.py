"""The dataset spec and manifest: both layouts, folder auto-detection, and every bad input of issue 2."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
import yaml
from dataset_builders import save_rgb

from engine.data import DatasetSpec, open_dataset, read_spec, write_spec
from engine.data.spec import parse_spec
from engine.errors import DatasetError


def kinds(dataset) -> list[str]:
    return [p.kind for p in dataset.problems]


def folder_dataset(root, classes=("cat", "dog"), per_class=3):
    for c, name in enumerate(classes):
        for i in range(per_class):
            save_rgb(root / "train" / name / f"{name}_{i}.png", 10 * c + i)
    return root


def csv_dataset(root, rows, *, csv="train.csv", **columns):
    """Images images/<name>.png for each row's ``image`` value that ends with .png; the CSV as given."""
    for i, row in enumerate(rows):
        name = str(row.get("image", ""))
        if name.endswith(".png") and not name.startswith(("..", "/")) and not row.get("_missing"):
            save_rgb(root / "images" / name, i)
    frame = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    frame.to_csv(root / csv, index=False)
    spec = {
        "name": "t",
        "layout": "csv",
        "train": {"images": "images", "csv": csv, "path_column": "image", "label_column": "label", **columns},
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root / "dataset.yaml"


# ---------------------------------------------------------------- the spec


def test_spec_round_trip(tmp_path):
    spec = parse_spec(
        {
            "name": "x",
            "layout": "csv",
            "train": {"csv": "t.csv", "path_column": "p", "label_column": "y", "group_column": "g"},
            "test": {"images": "test"},
            "sample_submission": {"csv": "s.csv", "id_column": "id", "target_column": "y"},
        }
    )
    path = write_spec(spec, tmp_path / "dataset.yaml")
    assert read_spec(path) == spec
    assert "format_version: 1" in path.read_text()


@pytest.mark.parametrize(
    "data, match",
    [
        ({"name": "x", "layout": "csv", "train": {"csv": "t.csv"}}, "train.path_column"),
        ({"name": "x", "layout": "grid", "train": {}}, "layout"),
        ({"name": "x", "layout": "folder", "train": {"imgs": "a"}}, "imgs"),
        ({"format_version": 9, "name": "x", "layout": "folder", "train": {}}, "format_version 9"),
        ([1, 2], "mapping"),
    ],
)
def test_bad_specs_name_the_field(data, match):
    with pytest.raises(DatasetError, match=match):
        parse_spec(data)


def test_bad_yaml_and_missing_spec(tmp_path):
    (tmp_path / "d.yaml").write_text("name: [unclosed")
    with pytest.raises(DatasetError, match="not valid YAML"):
        open_dataset(tmp_path / "d.yaml")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope.yaml")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a dataset spec"):
        open_dataset(tmp_path / "x.txt")


# ---------------------------------------------------------------- layouts and detection


def test_folder_layout_detected_and_spec_written(tmp_path):
    root = folder_dataset(tmp_path / "pets")
    save_rgb(root / "test" / "a.png", 99)
    save_rgb(root / "test" / "b.png", 98)
    pd.DataFrame({"id": ["a", "b"], "label": ["cat", "cat"]}).to_csv(root / "sample_submission.csv", index=False)
    ds = open_dataset(root)
    assert ds.spec.layout == "folder" and ds.spec.train.images == "train"
    assert ds.classes == ["cat", "dog"]
    assert ds.class_counts().tolist() == [3, 3]
    assert ds.manifest["sample_id"].tolist()[0] == "cat/cat_0.png"
    assert ds.manifest["label_index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert sorted(ds.test_manifest["sample_id"]) == ["a", "b"]
    assert ds.spec_path == root / "dataset.yaml" and (root / "dataset.yaml").is_file()
    assert ds.problems == []
    again = open_dataset(root)  # now read from the written spec
    assert again.spec == ds.spec
    pd.testing.assert_frame_equal(again.manifest, ds.manifest)


def test_folder_layout_at_the_root_does_not_take_the_test_folder_for_a_class(tmp_path):
    root = tmp_path / "flat"
    for name in ("cat", "dog"):
        for i in range(2):
            save_rgb(root / name / f"{i}.png", i + (10 if name == "dog" else 0))
    save_rgb(root / "test" / "t0.png", 50)
    ds = open_dataset(root)
    assert ds.spec.train.images == "." and ds.spec.test.images == "test"
    assert ds.classes == ["cat", "dog"]  # not "test"
    assert ds.test_manifest["sample_id"].tolist() == ["t0"]


def test_csv_layout_detected_with_group_and_metadata(tmp_path):
    root = tmp_path / "med"
    rows = [
        {"image": f"{i}.png", "label": ["benign", "malignant"][i % 2], "patient_id": f"p{i // 2}", "age": 30 + i}
        for i in range(6)
    ]
    csv_dataset(root, rows)
    (root / "dataset.yaml").unlink()
    ds = open_dataset(root)
    assert ds.spec.layout == "csv"
    assert (ds.spec.train.path_column, ds.spec.train.label_column, ds.spec.train.group_column) == (
        "image",
        "label",
        "patient_id",
    )
    assert ds.metadata_columns == ["age"]
    assert ds.manifest["group"].tolist() == ["p0", "p0", "p1", "p1", "p2", "p2"]
    assert ds.manifest["age"].tolist() == [30, 31, 32, 33, 34, 35]
    assert all(os.path.isabs(p) for p in ds.manifest["path"])


def _csv_folder(root, frame):
    for name in frame["image"]:
        save_rgb(root / "images" / name, hash(name) % 1000)
    frame.to_csv(root / "train.csv", index=False)
    return root


def test_detection_refuses_a_free_text_column_as_the_label(tmp_path):
    notes = [f"photo {i} taken near the window on a sunny afternoon" for i in range(8)]
    root = _csv_folder(tmp_path / "notes", pd.DataFrame({"image": [f"images/{i}.png" for i in range(8)],
                                                         "notes": notes}))
    with pytest.raises(DatasetError, match=r"names images in column 'image', but no column has a usual label name.*"
                                           r"not 'notes': it looks like free text"):
        open_dataset(root)


def test_detection_says_which_column_it_chose_and_why(tmp_path):
    frame = pd.DataFrame({"image": [f"images/{i}.png" for i in range(8)],
                          "notes": [f"scanned by nurse {i} on the second floor, left wing" for i in range(8)],
                          "species": ["cat", "dog"] * 4, "weight": [3.2, 4.1, 5.7, 2.2, 6.3, 3.9, 4.4, 5.0]})
    root = _csv_folder(tmp_path / "pets", frame)
    ds = open_dataset(root)
    assert ds.spec.train.label_column == "species" and ds.classes == ["cat", "dog"]
    source = ds.label_source()
    assert source["column"] == "species"
    assert "only other column that looks like class names (2 distinct values in 8 rows)" in source["reason"]
    assert "not 'notes': it looks like free text" in source["reason"]
    assert "not 'weight': it holds measurements" in source["reason"] or "not 'weight': most" in source["reason"]
    again = open_dataset(root)  # the written spec keeps the reason
    assert again.label_source() == source
    data = yaml.safe_load((root / "dataset.yaml").read_text())
    assert data["detected"]["label_column"]["column"] == "species"
    data["train"]["label_column"] = "notes"  # the user overrides it: the stale reason is not shown
    (root / "dataset.yaml").write_text(yaml.safe_dump(data))
    assert open_dataset(root).label_source() == {"column": "notes",
                                                 "reason": "named in the dataset spec (train.label_column)"}


def test_detection_with_two_candidate_labels_asks_to_name_one(tmp_path):
    frame = pd.DataFrame({"image": [f"images/{i}.png" for i in range(8)], "species": ["cat", "dog"] * 4,
                          "colour": ["black", "white", "white", "black"] * 2})
    with pytest.raises(DatasetError, match=r"several look like classes: \['species', 'colour'\]"):
        open_dataset(_csv_folder(tmp_path / "two", frame))


def test_detection_names_a_csv_it_cannot_parse(tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "train.csv").write_bytes(b'image,label\n"a.png,cat\n')  # an unclosed quote
    with pytest.raises(DatasetError, match=r"'train.csv' cannot be parsed"):
        open_dataset(root)
    folder = folder_dataset(tmp_path / "pets")  # beside class folders, a broken CSV does not hide them
    (folder / "train.csv").write_bytes(b'image,label\n"a.png,cat\n')
    assert open_dataset(folder).spec.layout == "folder"
    (folder / "dataset.yaml").unlink()
    (folder / "sample_submission.csv").write_text("id\n1\n")
    with pytest.raises(DatasetError, match=r"Sample submission 'sample_submission.csv' has the column\(s\) \['id'\]"):
        open_dataset(folder)


def test_numeric_labels_sort_as_numbers(tmp_path):
    rows = [{"image": f"{i}.png", "label": lab} for i, lab in enumerate([10, 2, 1, 2, 10, 1])]
    ds = open_dataset(csv_dataset(tmp_path, rows))
    assert ds.classes == ["1", "2", "10"]


def test_demo_dataset_shape(demo_dataset):
    assert demo_dataset.num_classes == 10
    assert len(demo_dataset.manifest) + len(demo_dataset.test_manifest) == 1797
    assert demo_dataset.metadata_columns == ["ink"]
    assert demo_dataset.problems == []


# ---------------------------------------------------------------- bad inputs (issue 2, point 3)


def test_missing_image_files_are_listed_and_the_rest_usable(tmp_path):
    rows = [{"image": f"{i}.png", "label": "a"} for i in range(4)] + [
        {"image": "gone1.png", "label": "a", "_missing": True},
        {"image": "gone2.png", "label": "b", "_missing": True},
    ]
    rows.append({"image": "4.png", "label": "b"})
    ds = open_dataset(csv_dataset(tmp_path, rows))
    assert len(ds.manifest) == 5
    missing = [p for p in ds.problems if p.kind == "missing"]
    assert [p.path for p in missing] == ["gone1.png", "gone2.png"]
    assert "Row 6 of 'train.csv'" in missing[0].message and "does not exist" in missing[0].message


def test_csv_without_the_named_columns_lists_the_columns_it_has(tmp_path):
    save_rgb(tmp_path / "images" / "0.png", 0)
    pd.DataFrame({"file": ["0.png"], "target": ["a"]}).to_csv(tmp_path / "train.csv", index=False)
    spec = {
        "name": "t",
        "layout": "csv",
        "train": {"images": "images", "csv": "train.csv", "path_column": "image", "label_column": "label"},
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(
        DatasetError,
        match=r"no column 'image' \(train.path_column in the dataset spec\); its columns are \['file', 'target'\]",
    ):
        open_dataset(tmp_path / "dataset.yaml")


def test_test_template_labels_not_in_training(tmp_path):
    root = folder_dataset(tmp_path)
    save_rgb(root / "test" / "t.png", 5)
    pd.DataFrame({"id": ["t"], "label": ["zebra"]}).to_csv(root / "sample_submission.csv", index=False)
    ds = open_dataset(root)
    (problem,) = [p for p in ds.problems if p.kind == "unknown_label"]
    assert "'zebra'" in problem.message and problem.path == "sample_submission.csv"


def test_placeholder_template_values_are_not_reported(demo_dataset):
    assert "unknown_label" not in kinds(demo_dataset)  # the demo's template is all 0, a class


def test_class_smaller_than_k(tmp_path):
    root = tmp_path
    for i in range(5):
        save_rgb(root / "train" / "common" / f"{i}.png", i)
    save_rgb(root / "train" / "rare" / "0.png", 9)
    ds = open_dataset(root)
    (problem,) = ds.check_folds(2)
    assert problem.kind == "small_class" and "'rare' has 1 image(s)" in problem.message
    assert [p.path for p in ds.check_folds(5)] == ["rare"]
    assert [p.path for p in ds.check_folds(6)] == ["common", "rare"]


def test_one_class_is_a_problem_and_cannot_be_launched(tmp_path, workspace):
    from engine.errors import ConfigError
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    root = folder_dataset(tmp_path / "cats", classes=("cat",), per_class=6)
    ds = open_dataset(root)
    (problem,) = ds.problems
    assert problem.kind == "one_class" and problem.path == "cat"
    assert "only class 'cat'" in problem.message and "at least two classes" in problem.message
    assert ds.check_folds(2) == [problem]  # one check: the scan's --folds and the launch agree
    config = {"dataset": str(root), "model": {"name": "test_resnet"}, "image_size": 16, "device": "cpu",
              "split": {"k": 2, "holdout_fraction": 0.0}}
    with pytest.raises(ConfigError, match="only class 'cat'.*at least two classes"):
        create_runs(load_run_configs(config), workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_duplicate_ids_keep_the_first_row(tmp_path):
    rows = [
        {"image": "0.png", "label": "a", "id": "x"},
        {"image": "1.png", "label": "b", "id": "x"},
        {"image": "2.png", "label": "b", "id": "y"},
    ]
    ds = open_dataset(csv_dataset(tmp_path, rows, id_column="id"))
    assert ds.manifest["sample_id"].tolist() == ["x", "y"]
    (problem,) = [p for p in ds.problems if p.kind == "duplicate_id"]
    assert problem.path == "x" and "appears 2 times" in problem.message


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda root: root.mkdir(), "Cannot tell the layout"),
        (lambda root: (root / "train" / "cat").mkdir(parents=True), "Cannot tell the layout"),
        (lambda root: (root.mkdir(), (root / "train.csv").write_text("")), "Cannot tell the layout"),
    ],
)
def test_empty_dataset_folders(tmp_path, make, match):
    make(tmp_path / "empty")
    with pytest.raises(DatasetError, match=match):
        open_dataset(tmp_path / "empty")


def test_empty_csv_and_header_only_csv(tmp_path):
    spec = csv_dataset(tmp_path, [{"image": "0.png", "label": "a"}])
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(DatasetError, match="'train.csv' is empty"):
        open_dataset(spec)
    (tmp_path / "train.csv").write_text("image,label\n")
    with pytest.raises(DatasetError, match="no usable training image"):
        open_dataset(spec)


def test_non_image_files_are_skipped_and_counted(tmp_path):
    root = folder_dataset(tmp_path)
    (root / "train" / "cat" / "notes.txt").write_text("hello")
    (root / "train" / "dog" / "scan.pdf").write_bytes(b"%PDF-1.4")
    (root / "train" / "dog" / "Thumbs.db").write_bytes(b"\0")  # file-browser litter: silently ignored
    (root / "train" / "dog" / ".DS_Store").write_bytes(b"\0")
    ds = open_dataset(root)
    assert len(ds.manifest) == 6
    assert sorted(p.path for p in ds.problems if p.kind == "not_image") == ["train/cat/notes.txt", "train/dog/scan.pdf"]
    rows = [{"image": "0.png", "label": "a"}, {"image": "1.png", "label": "b"}, {"image": "readme.txt", "label": "a"}]
    (tmp_path / "csv").mkdir()
    csv_ds = open_dataset(csv_dataset(tmp_path / "csv", rows))
    assert [p.path for p in csv_ds.problems if p.kind == "not_image"] == ["readme.txt"]


def test_paths_outside_the_root_are_rejected(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    save_rgb(tmp_path / "secret.png", 1)
    rows = [
        {"image": "0.png", "label": "a"},
        {"image": "1.png", "label": "b"},
        {"image": "../../secret.png", "label": "a"},
        {"image": str(tmp_path / "secret.png"), "label": "b"},
    ]
    ds = open_dataset(csv_dataset(root, rows))
    assert len(ds.manifest) == 2
    outside = [p for p in ds.problems if p.kind == "outside_root"]
    assert len(outside) == 2 and "points outside the dataset folder" in outside[0].message


def _with_follow_links(spec_path):
    data = yaml.safe_load(spec_path.read_text())
    data["follow_links_outside_root"] = True
    spec_path.write_text(yaml.safe_dump(data))
    return spec_path


def test_links_leaving_the_root_are_rejected_in_the_folder_layout(tmp_path):
    root = folder_dataset(tmp_path / "pets")
    outside = tmp_path / "elsewhere"
    save_rgb(outside / "secret.png", 1)
    save_rgb(outside / "more" / "a.png", 2)
    save_rgb(outside / "more" / "b.png", 3)
    (root / "train" / "cat" / "linked.png").symlink_to(outside / "secret.png")  # a file link
    (root / "train" / "bird").symlink_to(outside / "more", target_is_directory=True)  # a linked class folder
    (root / "train" / "dog" / "inside.png").symlink_to(root / "train" / "cat" / "cat_0.png")  # stays inside: fine
    save_rgb(root / "test" / "t.png", 9)
    (root / "test" / "t_linked.png").symlink_to(outside / "secret.png")
    ds = open_dataset(root)
    assert sorted(ds.manifest["sample_id"]) == ["cat/cat_0.png", "cat/cat_1.png", "cat/cat_2.png", "dog/dog_0.png",
                                                "dog/dog_1.png", "dog/dog_2.png", "dog/inside.png"]
    assert ds.test_manifest["sample_id"].tolist() == ["t"]
    outside_problems = {p.path: p.message for p in ds.problems if p.kind == "outside_root"}
    assert sorted(outside_problems) == ["test/t_linked.png", "train/bird/a.png", "train/bird/b.png",
                                        "train/cat/linked.png"]
    message = outside_problems["train/cat/linked.png"]
    assert "symbolic link" in message and str(outside / "secret.png") in message
    assert "follow_links_outside_root: true" in message

    opted_in = open_dataset(_with_follow_links(root / "dataset.yaml"))
    assert "cat/linked.png" in set(opted_in.manifest["sample_id"]) and "bird/a.png" in set(opted_in.manifest["sample_id"])
    assert len(opted_in.test_manifest) == 2
    assert not [p for p in opted_in.problems if p.kind == "outside_root"]


def test_a_csv_row_naming_a_link_that_leaves_the_root_is_rejected(tmp_path):
    root = tmp_path / "ds"
    save_rgb(tmp_path / "secret.png", 1)
    rows = [{"image": "0.png", "label": "a"}, {"image": "1.png", "label": "b"}, {"image": "2.png", "label": "a"},
            {"image": "link.png", "label": "b", "_missing": True}]
    spec = csv_dataset(root, rows)
    (root / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    ds = open_dataset(spec)
    assert ds.manifest["sample_id"].tolist() == ["0.png", "1.png", "2.png"]
    (problem,) = [p for p in ds.problems if p.kind == "outside_root"]
    assert problem.path == "link.png" and "Row 5 of 'train.csv'" in problem.message
    assert "symbolic link" in problem.message and str(tmp_path / "secret.png") in problem.message

    opted_in = open_dataset(_with_follow_links(spec))
    assert opted_in.manifest["sample_id"].tolist() == ["0.png", "1.png", "2.png", "link.png"]


def test_a_dataset_folder_reached_through_a_link_is_inside_itself(tmp_path):
    root = folder_dataset(tmp_path / "real")
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    ds = open_dataset(tmp_path / "alias")
    assert len(ds.manifest) == 6 and not ds.problems


def test_non_utf8_csv_is_read_as_latin1_with_a_problem(tmp_path):
    save_rgb(tmp_path / "images" / "café.png", 1)
    save_rgb(tmp_path / "images" / "b.png", 2)
    (tmp_path / "train.csv").write_bytes("image,label,note\ncafé.png,a,crème\nb.png,b,x\n".encode("latin-1"))
    spec = {
        "name": "t",
        "layout": "csv",
        "train": {"images": "images", "csv": "train.csv", "path_column": "image", "label_column": "label"},
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    ds = open_dataset(tmp_path / "dataset.yaml")
    assert ds.manifest["sample_id"].tolist() == ["café.png", "b.png"]
    assert ds.manifest["note"].tolist() == ["crème", "x"]
    assert kinds(ds) == ["encoding"]


def test_odd_file_names(tmp_path):
    root = folder_dataset(tmp_path)
    odd = os.fsencode(root / "train" / "cat") + b"/bad\xff name.png"
    shutil.copyfile(root / "train" / "cat" / "cat_0.png", odd)
    save_rgb(root / "train" / "dog" / "spaced name #1 ümlaut.png", 77)
    ds = open_dataset(root)
    assert "dog/spaced name #1 ümlaut.png" in ds.manifest["sample_id"].tolist()
    (problem,) = [p for p in ds.problems if p.kind == "odd_filename"]
    assert "not valid UTF-8" in problem.message and problem.path == "train/cat/bad\\xff name.png"
    problem.path.encode("utf-8")  # printable: no lone surrogates
    assert len(ds.manifest) == 7


def test_folder_given_as_a_file_of_another_kind(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")


def test_spec_type_is_public():
    assert DatasetSpec.model_fields["layout"].is_required()
