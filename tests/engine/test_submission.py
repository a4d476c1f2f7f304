import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from engine.analysis.load import load_predictions
from engine.analysis.voting import combine
from engine.errors import AnalysisError
from engine.submission import make_submission, target_format

_spec = importlib.util.spec_from_file_location("synthetic_runs", Path(__file__).parent / "analysis" / "synthetic_runs.py")
_synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synthetic)
write_run = _synthetic.write_run  # the analysis tests' synthetic run directories


@pytest.fixture
def demo_runs(tmp_path, demo_spec_path):
    """Two synthetic runs of the demo dataset (10 classes '0'..'9') with test predictions for every template id."""
    template = pd.read_csv(demo_spec_path.parent / "sample_submission.csv", dtype=str)
    root = tmp_path / "workspace" / "runs"
    root.mkdir(parents=True)
    common = dict(k=3, n_classes=10, classes=[str(i) for i in range(10)], dataset=str(demo_spec_path),
                  test_ids=template["id"].tolist()[::-1])  # another order than the template's
    return root, template, [write_run(root, "a", **common), write_run(root, "b", seed=1, **common)]


def test_submission_follows_the_template_and_records_the_combination(tmp_path, demo_runs):
    root, template, runs = demo_runs
    out = tmp_path / "sub.csv"
    result = make_submission(["a", "b"], out=out, voting="hard", tta="max", workspace=root.parent)
    written = pd.read_csv(out, dtype=str)
    assert list(written.columns) == list(template.columns)
    assert written["id"].tolist() == template["id"].tolist()
    # the predictions are the hard vote of runs x folds after a max-merge of each fold model's views
    test = load_predictions(runs, "test").merge_tta("max")
    labels = combine(test.logits, "hard")[0]
    expected = pd.Series(labels, index=test.sample_ids).loc[template["id"]].astype(str).tolist()
    assert written["label"].tolist() == expected
    record = json.loads((tmp_path / "sub.json").read_text())
    assert result.sidecar_path == tmp_path / "sub.json"
    assert [r["run_id"] for r in record["runs"]] == ["a", "b"]
    assert record["folds"] == [0, 1, 2] and record["views"] == ["identity", "hflip"]
    assert record["voting"] == "hard" and record["tta"] == "max" and record["created_at"]
    assert record["expected"]["subset"] == "holdout" and 0 <= record["expected"]["accuracy"] <= 1
    assert record["target_format"] == "name" and record["n_rows"] == len(template)


def test_submission_with_chosen_folds_views_and_default_path(demo_runs):
    root, template, _ = demo_runs
    result = make_submission("a", voting="soft", tta="mean", folds=[1], views=["hflip"], workspace=root.parent)
    assert result.path.parent == root.parent / "submissions" and result.path.suffix == ".csv"
    assert result.record["folds"] == [1] and result.record["views"] == ["hflip"]
    assert len(pd.read_csv(result.path)) == len(template)


def test_missing_test_predictions_or_ids_are_refused(tmp_path, demo_runs):
    root, template, runs = demo_runs
    (runs[1] / "predictions" / "fold2_test.parquet").unlink()
    with pytest.raises(AnalysisError, match=r"Run 'b' has no test predictions for fold\(s\) \[2\]"):
        make_submission(["a", "b"], out=tmp_path / "x.csv", workspace=root.parent)
    assert not (tmp_path / "x.csv").exists()
    for f in range(3):
        path = runs[0] / "predictions" / f"fold{f}_test.parquet"
        frame = pd.read_parquet(path)
        frame[frame["sample_id"] != template["id"].iloc[3]].to_parquet(path)
    with pytest.raises(AnalysisError, match=r"1 of the template's .* ids have no test prediction"):
        make_submission(["a"], out=tmp_path / "y.csv", workspace=root.parent)


def test_target_format_names_or_indices():
    assert target_format(pd.Series(["cat", "dog"]), ["cat", "dog"]) == "name"
    assert target_format(pd.Series(["0", "1"]), ["cat", "dog"]) == "index"
    assert target_format(pd.Series(["0", "0"]), ["0", "1"]) == "name"  # both: names
    assert target_format(pd.Series([], dtype=str), ["cat"]) == "name"



def test_a_template_without_its_target_column_is_refused_alike_by_the_dataset_and_the_submission(tmp_path):
    """One reader checks the template's columns (engine.data.manifest.read_sample_submission)."""
    from engine.data import open_dataset
    from engine.errors import DatasetError

    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog")):
        for i in range(3):
            (root / "train" / name).mkdir(parents=True, exist_ok=True)
            (root / "train" / name / f"{i}.png").write_bytes(_png(c * 10 + i))
    (root / "test").mkdir()
    (root / "test" / "t0.png").write_bytes(_png(99))
    (root / "sample_submission.csv").write_text("id,label\nt0,cat\n")
    open_dataset(root)  # writes dataset.yaml naming the template's id and target columns
    (root / "sample_submission.csv").write_text("id,prediction\nt0,cat\n")  # the target column renamed
    message = r"Sample submission 'sample_submission.csv' \(in '.*'\) has no target_column 'label'; its columns are"
    with pytest.raises(DatasetError, match=message):
        open_dataset(root)
    runs_root = tmp_path / "workspace" / "runs"
    runs_root.mkdir(parents=True)
    write_run(runs_root, "a", k=2, n_classes=2, classes=["cat", "dog"], dataset=str(root / "dataset.yaml"),
              test_ids=["t0"])
    with pytest.raises(DatasetError, match=message):
        make_submission(["a"], out=tmp_path / "sub.csv", workspace=runs_root.parent)


def _png(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
