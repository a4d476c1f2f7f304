"""`augment` may name a preset (light, medium, ...), also as the values of `vary:`; run names and study files
then say which preset each run trained with."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.augment.presets import preset, preset_name_of
from engine.errors import ConfigError
from engine.training.config import load_run_configs, varied_fields


def as_yaml(spec: dict) -> dict:
    return json.loads(json.dumps(spec))


def test_vary_over_preset_names_gives_one_run_per_pipeline(demo_spec_path, workspace):
    from engine.runs.store import read_status, read_study
    from engine.training.config import read_run_config
    from engine.training.create import create_runs

    configs = load_run_configs({"dataset": str(demo_spec_path), "model": {"name": "test_resnet"}, "image_size": 32,
                                "vary": {"augment": ["light", "medium"]}})
    assert [as_yaml(c.augment) for c in configs] == [as_yaml(preset("light", 32)), as_yaml(preset("medium", 32))]
    assert varied_fields(configs) == {"augment": ["light", "medium"]}
    run_dirs = create_runs(configs, workspace=workspace)
    assert [read_run_config(d).name for d in run_dirs] == ["test_resnet augment=light", "test_resnet augment=medium"]
    study = read_study(read_status(run_dirs[0])["study_id"], workspace)
    assert study["varied"] == {"augment": ["light", "medium"]}


def test_a_preset_without_image_size_takes_the_models_default_size():
    (cfg,) = load_run_configs({"dataset": "x", "model": {"name": "test_resnet"}, "augment": "heavy"})
    assert cfg.image_size is None
    assert preset_name_of(cfg.augment, 160) == "heavy"  # test_resnet's default input is 160 px


def test_an_unknown_preset_name_is_refused_with_the_presets_listed():
    with pytest.raises(ConfigError, match=r"preset name among \['none', 'light', 'medium', 'heavy'\].*'lite'"):
        load_run_configs({"dataset": "x", "image_size": 32, "augment": "lite"})


def test_preset_name_of_survives_the_yaml_round_trip():
    spec = yaml.safe_load(yaml.safe_dump(preset("medium", 64)))
    assert preset_name_of(spec, 64) == "medium"
    assert preset_name_of(spec, 32) is None
    spec["transform"]["transforms"][1]["p"] = 0.9
    assert preset_name_of(spec, 64) is None
