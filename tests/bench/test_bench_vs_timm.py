"""bench/vs_timm.py's own logic: timm log parsing, argument checks, the data layout and the engine config.

No benchmark runs here (that takes minutes): the functions the benchmark is made of are checked on a
captured timm log, a tiny generated dataset and the engine's own config / split code.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_vs_timm", REPO / "bench" / "vs_timm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vs_timm = _load()

# Two epochs of timm's train.py (test_resnet, batch 16, --log-interval 2), as it printed them.
TIMM_LOG = """\
Training with a single process on 1 device (cpu).
Model test_resnet created, param count:373173
Scheduled epochs: 2 (epochs + cooldown_epochs). Warmup within epochs when warmup_prefix=False. LR stepped per epoch.
Train: 0 [   0/4 ( 25%)]  Loss: 1.61 (1.61)  Time: 0.981s,   16.30/s  (0.981s,   16.30/s)  LR: 1.000e-03  Data: 0.271 (0.271)
Train: 0 [   2/4 ( 75%)]  Loss: 1.77 (1.65)  Time: 0.268s,   59.73/s  (0.460s,   34.75/s)  LR: 1.000e-03  Data: 0.004 (0.092)
Train: 0 [   3/4 (100%)]  Loss: 1.68 (1.66)  Time: 0.160s,  100.31/s  (0.385s,   41.54/s)  LR: 1.000e-03  Data: 0.000 (0.069)
Test: [   0/1]  Time: 0.708 (0.708)  Loss:   1.674 ( 1.674)  Acc@1:   6.250 (  6.250)  Acc@5: 100.000 (100.000)
Current checkpoints:
 ('/tmp/out/20261203-090256-test_resnet-64/checkpoint-0.pth.tar', 19.999999389648437)

Train: 1 [   0/4 ( 25%)]  Loss: 1.69 (1.69)  Time: 1.255s,   12.75/s  (1.255s,   12.75/s)  LR: 5.000e-04  Data: 0.183 (0.183)
Train: 1 [   2/4 ( 75%)]  Loss: 1.66 (1.66)  Time: 0.153s,  104.65/s  (0.615s,   26.03/s)  LR: 5.000e-04  Data: 0.005 (0.064)
Train: 1 [   3/4 (100%)]  Loss: 1.49 (1.62)  Time: 0.165s,   97.00/s  (0.502s,   31.86/s)  LR: 5.000e-04  Data: 0.010 (0.050)
Test: [   0/1]  Time: 0.318 (0.318)  Loss:   1.727 ( 1.727)  Acc@1:   6.250 (  6.250)  Acc@5: 100.000 (100.000)
*** Best metric: 19.999999389648437 (epoch 0)
"""


def test_parse_timm_log_takes_each_epochs_last_running_mean():
    epochs = vs_timm.parse_timm_log(TIMM_LOG)
    assert list(epochs) == [1, 2]  # timm counts epochs from 0
    assert epochs[1] == {"images_per_second": 41.54, "seconds": 1.54, "updates": 4, "data_share": 0.179}
    assert epochs[2]["images_per_second"] == 31.86 and epochs[2]["seconds"] == pytest.approx(4 * 0.502, abs=0.01)


def test_parse_timm_log_refuses_a_cut_epoch_and_a_log_without_training():
    cut = TIMM_LOG.split("Train: 1 [   3/4")[0]
    with pytest.raises(ValueError, match="stops inside epoch 1"):
        vs_timm.parse_timm_log(cut)
    with pytest.raises(ValueError, match="no 'Train:' line"):
        vs_timm.parse_timm_log("Traceback (most recent call last):\nModuleNotFoundError: No module named 'timm'\n")


def test_engine_cache_seconds_from_the_job_log():
    log = ("2026-12-03 09:04:42,629 INFO engine.jobs.runner: run-1: training on cpu\n"
           "2026-12-03 09:04:44,699 INFO engine.data.decoded_cache: Decoded-image cache /w/store: 200 image(s) "
           "decoded (0 failed), 0 reused.\n")
    assert vs_timm.engine_cache_seconds(log) == 2.07
    assert vs_timm.engine_cache_seconds(log.splitlines()[0]) is None


def test_a_missing_timm_train_says_how_to_get_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        vs_timm.parse_args(["--timm-train", str(tmp_path / "nowhere" / "train.py")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'--timm-train'" in err and "no such file" in err
    assert "git clone" in err and "huggingface/pytorch-image-models" in err


def test_a_file_that_is_not_timms_train_py_is_refused(tmp_path, capsys):
    other = tmp_path / "train.py"
    other.write_text("print('my own trainer')\n")
    with pytest.raises(SystemExit):
        vs_timm.parse_args(["--timm-train", str(other)])
    assert "does not" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "field"), [(["--images", "100"], "--images"), (["--epochs", "0"], "--epochs"),
                                             (["--device", "tpu"], "--device"), (["--workers", "-1"], "--workers")])
def test_bad_numbers_are_refused_by_name(tmp_path, capsys, args, field):
    train = tmp_path / "train.py"
    train.write_text("def train_one_epoch():\n    _logger.info('Train: ...')\n")
    with pytest.raises(SystemExit):
        vs_timm.parse_args(["--timm-train", str(tmp_path), *args])  # a folder holding train.py is accepted
    assert f"'{field}'" in capsys.readouterr().err


def test_both_sides_get_the_same_settings(tmp_path):
    train = tmp_path / "train.py"
    train.write_text("def train_one_epoch():\n    _logger.info('Train: ...')\n")
    args = vs_timm.parse_args(["--timm-train", str(train), "--model", "test_resnet", "--image-size", "64",
                               "--batch-size", "16", "--workers", "3", "--epochs", "2"])
    cmd = vs_timm.timm_command(args, "/data", tmp_path / "out", "x")
    flag = {cmd[i]: cmd[i + 1] for i in range(2, len(cmd) - 1) if cmd[i].startswith("-")}
    cfg = vs_timm.engine_config(args, "/data/engine/dataset.yaml")
    assert flag["--model"] == cfg["model"]["name"] == "test_resnet"
    assert int(flag["--img-size"]) == cfg["image_size"] == 64
    assert int(flag["-b"]) == cfg["train"]["batch_size"] == 16
    assert int(flag["--workers"]) == cfg["train"]["num_workers"] == 3
    assert int(flag["--epochs"]) == cfg["train"]["epochs"] == 2
    assert flag["--opt"] == cfg["train"]["optimizer"] == "adamw"
    assert float(flag["--weight-decay"]) == cfg["train"]["weight_decay"]
    assert float(flag["--smoothing"]) == cfg["train"]["label_smoothing"] == 0.0
    assert "--no-prefetcher" in cmd and flag["--device"] == cfg["device"] == "cpu"


def test_engine_fold_0_trains_and_validates_on_as_many_images_as_timm(tmp_path):
    """The data layout and the engine config, through the engine's own loader, config parser and split."""
    from engine.data import open_dataset
    from engine.runs.store import read_split
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    data = vs_timm.make_dataset(tmp_path / "data", 40)
    assert (data["train"], data["validation"]) == (30, 10)
    timm_train = sorted((tmp_path / "data" / "train").rglob("*.jpg"))
    timm_val = sorted((tmp_path / "data" / "validation").rglob("*.jpg"))
    assert len(timm_train) == 30 and len(timm_val) == 10
    assert {p.parent.name for p in timm_val} == {f"class_{k}" for k in range(5)}  # every class validated
    engine_files = sorted((tmp_path / "data" / "engine" / "images").rglob("*.jpg"))
    assert len(engine_files) == 40 and all(os.stat(p).st_nlink == 2 for p in engine_files)  # hard links, no copies

    dataset = open_dataset(data["engine_spec"], write_detected_spec=False)
    assert len(dataset.manifest) == 40 and len(dataset.classes) == 5
    args = vs_timm.parse_args(["--timm-train", str(_fake_train(tmp_path)), "--batch-size", "2", "--images", "40"])
    (run_dir,) = create_runs(load_run_configs(vs_timm.engine_config(args, data["engine_spec"])),
                             workspace=tmp_path / "ws")
    split = read_split(run_dir)
    assert (split["fold"] == 0).sum() == len(timm_val) and (split["fold"] != 0).sum() == len(timm_train)
    assert not split["is_holdout"].any()
    again = vs_timm.make_dataset(tmp_path / "data", 40)  # a second run reuses the images
    assert again == data

    small = vs_timm.parse_args(["--timm-train", str(_fake_train(tmp_path)), "--model", "test_resnet",
                                "--image-size", "32", "--batch-size", "2", "--images", "40"])
    costs = vs_timm.pipeline_costs(small, data, tmp_path)
    assert costs["model_step_ms"] > 0 and costs["engine_pipeline_ms"] > 0
    # decoding a 640x480 JPEG at every read costs more than reading the decoded-image cache
    assert costs["timm_pipeline_ms"] > 2 * costs["engine_pipeline_ms"]


def _fake_train(folder: Path) -> Path:
    path = folder / "train.py"
    path.write_text("def train_one_epoch():\n    _logger.info('Train: ...')\n")
    return path


def _summary(tmp_path) -> dict:
    args = vs_timm.parse_args(["--timm-train", str(_fake_train(tmp_path)), "--repeats", "2"])
    side = {"wall_seconds": 10.0, "load_before": 0.5, "load_after": 1.5, "log": "x"}
    runs = [{"timm": {**side, "epochs": {1: {"images_per_second": 20.0, "seconds": 50.0, "data_share": 0.3},
                                         2: {"images_per_second": 25.0, "seconds": 40.0, "data_share": 0.2}}},
             "engine": {**side, "cache_seconds": 10.0,
                        "epochs": {1: {"images_per_second": 30.0, "seconds": 40.0},
                                   2: {"images_per_second": 30.0, "seconds": 40.0}}}},
            {"timm": {**side, "epochs": {1: {"images_per_second": 22.0, "seconds": 50.0, "data_share": 0.3},
                                         2: {"images_per_second": 20.0, "seconds": 50.0, "data_share": 0.2}}},
             "engine": {**side, "cache_seconds": 0.1,
                        "epochs": {1: {"images_per_second": 33.0, "seconds": 40.0},
                                   2: {"images_per_second": 36.0, "seconds": 40.0}}}}]
    data = {"images": 2000, "train": 1500, "validation": 500, "megabytes": 130.0}
    return vs_timm.summarize(args, data, runs, "2 cores usable (test CPU)")


def test_summary_takes_medians_and_paired_ratios(tmp_path):
    r = _summary(tmp_path)
    epoch2 = r["rows"][1]
    assert (epoch2["timm"], epoch2["engine"]) == (22.5, 33.0)
    assert epoch2["ratio"] == pytest.approx((30 / 25 + 36 / 20) / 2, abs=1e-3)  # median of per-run ratios
    assert r["engine_cache_seconds_cold"] == 10.0  # the first (cold) run's build
    assert r["engine_epoch1_with_cache_build"] == pytest.approx(30.0 * 40 / 50)
    text = vs_timm.markdown(r)
    assert "| 2 | 22.5 | 33.0 | **1.50x** | 20% |" in text
    assert "cold cache build (10.0 s" in text and "24.0 images/s against timm's 20.0" in text
    assert "Where the CPU goes" not in text  # no profile, no table
    r["costs"] = {"timm_pipeline_ms": 2.5, "engine_pipeline_ms": 0.25, "model_step_ms": 7.0}
    text = vs_timm.markdown(r)
    assert "| total | 9.50 | 7.25 |" in text and "costs 10x less CPU per image" in text


def test_write_docs_replaces_only_its_block(tmp_path):
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text(f"# B\n\n## vs timm\n\n{vs_timm.BLOCK_START}\nold\n{vs_timm.BLOCK_END}\n\n## Next\nkept\n")
    vs_timm.write_docs("new table", docs)
    assert docs.read_text() == f"# B\n\n## vs timm\n\n{vs_timm.BLOCK_START}\nnew table\n{vs_timm.BLOCK_END}\n\n## Next\nkept\n"
    docs.write_text("# no block\n")
    with pytest.raises(SystemExit, match="vs-timm"):
        vs_timm.write_docs("x", docs)


def test_the_docs_hold_the_block():
    text = (REPO / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert vs_timm.BLOCK_START in text and vs_timm.BLOCK_END in text
