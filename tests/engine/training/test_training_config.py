"""Run configs: loading, vary -> sibling runs, overrides, and every refusal before anything is written."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.errors import ConfigError
from engine.training.config import RunConfig, load_run_configs, parse_override, varied_fields
from engine.training.create import create_runs


def test_defaults_and_round_trip(tiny_config):
    (cfg,) = load_run_configs(tiny_config())
    assert isinstance(cfg, RunConfig) and cfg.train.optimizer == "adamw" and cfg.split.k == 3
    again = load_run_configs(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"))))[0]
    assert again == cfg


def test_vary_gives_the_cartesian_product(tiny_config):
    data = tiny_config(vary={"train.label_smoothing": [0.0, 0.1], "model.name": ["test_resnet", "test_vit"]})
    configs = load_run_configs(data)
    assert [(c.train.label_smoothing, c.model.name) for c in configs] == [
        (0.0, "test_resnet"), (0.0, "test_vit"), (0.1, "test_resnet"), (0.1, "test_vit")]
    assert set(varied_fields(configs)) == {"train.label_smoothing", "model.name"}


def test_overrides_parse_yaml_values(tiny_config):
    (cfg,) = load_run_configs(tiny_config(), ["train.epochs=7", "train.grad_clip=1.5", "tta_views=[identity, vflip]",
                                              "model.pretrained_file=null"])
    assert cfg.train.epochs == 7 and cfg.train.grad_clip == 1.5 and cfg.tta_views == ["identity", "vflip"]
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("train.epochs")


def test_dataset_path_is_relative_to_the_config_file(tmp_path, demo_spec_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": "../data/dataset.yaml"}))
    (cfg,) = load_run_configs(path)
    assert cfg.dataset == str((tmp_path / "data" / "dataset.yaml").resolve())


def test_augment_may_name_a_saved_pipeline(tmp_path, demo_spec_path):
    from engine.augment.pipeline import save_pipeline_file
    from engine.augment.presets import preset

    save_pipeline_file(preset("medium", 32), tmp_path / "augment" / "current.yaml")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(demo_spec_path), "augment": "augment/current.yaml"}))
    (cfg,) = load_run_configs(path)
    assert cfg.augment == json.loads(json.dumps(preset("medium", 32)))  # tuples read back as lists
    path.write_text(yaml.safe_dump({"dataset": str(demo_spec_path), "augment": "augment/missing.yaml"}))
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_run_configs(path)


def test_repo_demo_config_loads():
    from pathlib import Path

    (cfg,) = load_run_configs(Path(__file__).resolve().parents[3] / "configs" / "demo.yaml")
    assert cfg.dataset.endswith("workspace/datasets/digits-demo/dataset.yaml")


@pytest.mark.parametrize(("section", "match"), [
    ({"train.learning_rate": 0.1}, r"train\.learning_rate: unknown field.*Allowed fields"),
    ({"train.optimizer": "lamb"}, r"'train\.optimizer' parameter must be one of 'adamw', 'adam', 'sgd' or 'rmsprop'"),
    ({"train.scheduler": "linear"}, r"'train\.scheduler' parameter must be one of"),
    ({"train.monitor": "acc"}, r"'train\.monitor' parameter must be one of"),
    ({"train.label_smoothing": 1.5}, r"train\.label_smoothing"),
    ({"tta_views": ["identity", "flip"]}, r"tta_views.*Got \['flip'\]"),
    ({"device": "gpu"}, r"'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ({"split.k": 1}, r"split\.k"),
])
def test_bad_fields_are_named(tiny_config, section, match):
    with pytest.raises(ConfigError, match=match):
        load_run_configs(tiny_config(**section))


def test_misspelled_field_gets_a_suggestion(tiny_config):
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing'"):
        load_run_configs(tiny_config(**{"train.label_smothing": 0.1}))


BAD_RUNS = {
    "unknown model": ({"model.name": "test_resnett"}, r"timm model name.*'test_resnett'.*Close names.*test_resnet"),
    "k above smallest class": ({"split.k": 500}, r"'split\.k' parameter \(500\) cannot split .* Class '\d' has \d+ sample\(s\), fewer than the 500 folds"),
    "holdout too large": ({"split.holdout_fraction": 0.995}, r"holdout_fraction.*(leaves too few|cannot make)"),
    "missing weights file": ({"model.pretrained_file": "/nowhere/w.safetensors"}, r"model.pretrained.*does not exist"),
    "bad augmentation dict": ({"augment": {"transform": {"__class_fullname__": "NoSuchTransform"}}},
                              r"'augment' field.*cannot be built"),
    "augmentation not a pipeline": ({"augment": {"p": 1}}, r"'transform' key"),
    "unknown group column": ({"split.group_column": "patient"}, r"split\.group_column.*'patient'"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_runs_are_refused_before_anything_is_written(tmp_path, tiny_config, case):
    section, match = BAD_RUNS[case]
    configs = load_run_configs(tiny_config(**section))
    workspace = tmp_path / "ws"
    with pytest.raises(ConfigError, match=match):
        create_runs(configs, workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())
    assert not (workspace / "studies").exists()


def test_a_study_cannot_vary_the_split(tmp_path, tiny_config):
    configs = load_run_configs(tiny_config(vary={"split.k": [2, 3]}))
    with pytest.raises(ConfigError, match="share one split.*'split'"):
        create_runs(configs, workspace=tmp_path)


def test_missing_dataset_names_the_file(tmp_path, tiny_config):
    configs = load_run_configs(tiny_config(dataset=str(tmp_path / "none" / "dataset.yaml")))
    with pytest.raises(ConfigError, match="'dataset' parameter.*dataset.yaml"):
        create_runs(configs, workspace=tmp_path)
