"""TensorBoard event files: each fold's scalars are metrics.csv's rows, the run's hparams carry the CV metrics,
TensorBoard's own reader finds every run, and a failure to write never stops training."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.runs import store
from engine.training.config import read_run_config
from engine.training.tensorboard import CV_TAGS, SCALAR_TAGS, cv_metrics, tensorboard_dir


def _accumulator(path) -> EventAccumulator:
    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


def test_fold_scalars_equal_metrics_csv(tiny_study):
    for run_dir in tiny_study.run_dirs:
        metrics = store.read_metrics(run_dir)
        for fold, rows in metrics.groupby("fold"):
            acc = _accumulator(tensorboard_dir(run_dir, fold))
            assert set(acc.Tags()["scalars"]) == set(SCALAR_TAGS.values())
            for column, tag in SCALAR_TAGS.items():
                events = acc.Scalars(tag)
                assert [e.step for e in events] == list(rows["epoch"])
                np.testing.assert_allclose([e.value for e in events], rows[column].to_numpy(dtype=float), rtol=1e-6)
            texts = {t: acc.Tensors(t)[0].tensor_proto.string_val[0].decode() for t in acc.Tags()["tensors"]}
            assert "RandomResizedCrop" in texts["augment/text_summary"]  # the light preset, as trained
            assert "label_smoothing" in texts["config/text_summary"]


def test_run_hparams_carry_the_final_cv_metrics_and_the_study(tiny_study):
    from tensorboard.plugins.hparams import plugin_data_pb2

    for run_dir in tiny_study.run_dirs:
        acc = _accumulator(tensorboard_dir(run_dir))
        expected = cv_metrics(run_dir)
        assert set(expected) == set(CV_TAGS)
        for key, tag in CV_TAGS.items():
            assert acc.Scalars(tag)[0].value == pytest.approx(expected[key], rel=1e-6)
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        config = read_run_config(run_dir)
        assert hparams["study"].string_value == tiny_study.study_id
        assert hparams["label_smoothing"].number_value == pytest.approx(config.train.label_smoothing)
        assert (hparams["model"].string_value, hparams["augment"].string_value) == (config.model.name, "light")


def test_tensorboard_reads_every_run_of_the_workspace(tiny_study):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tiny_study.workspace / "runs"))
    mux.Reload()
    runs = set(mux.Runs())
    for run_dir in tiny_study.run_dirs:
        assert {f"{run_dir.name}/tensorboard", f"{run_dir.name}/tensorboard/fold0",
                f"{run_dir.name}/tensorboard/fold1"} <= runs


def test_a_failing_event_writer_warns_and_training_goes_on(mini_spec_path, workspace, caplog, tiny_config):
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs
    from engine.training.fit import train_run

    config = tiny_config(**{"dataset": str(mini_spec_path), "split.k": 2})
    (run_dir,) = create_runs(load_run_configs(config), workspace=workspace)
    (run_dir / "tensorboard").write_text("a file where the event folder should go")
    with caplog.at_level(logging.WARNING, logger="engine.training.tensorboard"):
        train_run(run_dir, device="cpu")
    assert store.read_status(run_dir)["state"] == "done"
    assert len(store.read_metrics(run_dir)) == 2
    assert "TensorBoard logging disabled" in caplog.text
