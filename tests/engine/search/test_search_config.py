"""The search: section — parsing, refusals with messages naming the field, and the search space."""

from __future__ import annotations

import optuna
import pytest
import yaml

from engine.errors import ConfigError
from engine.search import augment_at_strength, create_search, parse_search_section, prepare_search, trial_config
from engine.search.space import suggest


def search_config(spec_path, **search) -> dict:
    section = {"trials": 2, "params": {"train.lr": {"low": 1e-4, "high": 1e-1, "log": True}}, **search}
    return {"dataset": str(spec_path), "model": {"name": "test_resnet"}, "image_size": 32, "device": "cpu",
            "split": {"k": 2, "seed": 0, "holdout_fraction": 0.2}, "tta_views": ["identity"],
            "train": {"epochs": 1, "batch_size": 32, "num_workers": 0}, "search": section}


def test_section_defaults_and_direction():
    cfg = parse_search_section({"params": {"train.lr": {"low": 0.001, "high": 0.1}}})
    assert (cfg.trials, cfg.metric, cfg.evaluate_on, cfg.pruner, cfg.direction) == (10, "macro_f1", "oof", "median",
                                                                                     "maximize")
    assert parse_search_section({"metric": "log_loss", "params": {"model.name": ["a"]}}).direction == "minimize"
    assert parse_search_section({"metric": "log_loss", "params": {"model.name": ["a"]}}).epoch_column == "val_loss"


BAD_SECTIONS = {
    "empty range": ({"train.lr": {"low": 0.1, "high": 0.1}}, r"search range of 'train.lr' is empty"),
    "reversed range": ({"train.weight_decay": {"low": 0.2, "high": 0.1}}, r"'low' \(0.2\) must be below 'high'"),
    "unknown field": ({"train.lrr": {"low": 0.1, "high": 0.2}}, r"'train.lrr' is not a field.*Did you mean 'train.lr'"),
    "unknown section": ({"optim.lr": [0.1]}, r"'optim.lr' is not a field of the run config"),
    "split field": ({"split.seed": [1, 2]}, r"'split.seed' cannot be searched: the trials of one search share one split"),
    "dataset": ({"dataset": ["a", "b"]}, r"'dataset' cannot be searched"),
    "log with zero": ({"train.weight_decay": {"low": 0.0, "high": 0.1, "log": True}}, r"log-uniform.*'low' must be > 0"),
    "int field, float range": ({"train.batch_size": {"low": 8.5, "high": 64}}, r"integer field"),
    "range on a name": ({"model.name": {"low": 1, "high": 2}}, r"'model.name' takes a list of choices"),
    "empty choices": ({"model.name": []}, r"empty list of choices"),
    "repeated choice": ({"model.name": ["a", "a"]}, r"repeats a choice"),
    "strength outside [0, 1]": ({"augment_strength": {"low": 0.0, "high": 2.0}}, r"within \[0, 1\]"),
    "two pipelines": ({"augment": ["light"], "augment_strength": {"low": 0, "high": 1}}, r"both choose the augm"),
    "half a range": ({"train.lr": {"low": 0.1}}, r"needs both 'low' and 'high'"),
}


@pytest.mark.parametrize("params,message", BAD_SECTIONS.values(), ids=BAD_SECTIONS.keys())
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ConfigError, match=message):
        parse_search_section({"params": params})


def test_bad_section_fields_are_named():
    with pytest.raises(ConfigError, match=r"'search.metric' parameter must be one of"):
        parse_search_section({"metric": "f1", "params": {"train.lr": [0.1]}})
    with pytest.raises(ConfigError, match=r"search.trial: unknown field; did you mean 'trials'"):
        parse_search_section({"trial": 3, "params": {"train.lr": [0.1]}})
    with pytest.raises(ConfigError, match=r"'search.trials' parameter"):
        parse_search_section({"trials": 0, "params": {"train.lr": [0.1]}})
    with pytest.raises(ConfigError, match=r"'search.params' parameter must map at least one"):
        parse_search_section({"trials": 3})


def test_a_value_the_config_refuses_is_named_before_anything_is_written(mini_spec_path, workspace):
    data = search_config(mini_spec_path, params={"train.label_smoothing": {"low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match=r"(?s)'train.label_smoothing' cannot take the value 1.0.*less than 1"):
        create_search(data, workspace=workspace)
    bad_model = search_config(mini_spec_path, params={"model.name": ["test_resnet", "no_such_net"]})
    with pytest.raises(ConfigError, match=r"'model.name' cannot take the value 'no_such_net'"):
        create_search(bad_model, workspace=workspace)
    assert not (workspace / "optuna.db").exists() and not (workspace / "searches").exists()


def test_search_and_vary_do_not_mix_and_a_search_needs_its_section(demo_spec_path, workspace):
    data = search_config(demo_spec_path)
    with pytest.raises(ConfigError, match="cannot also have a 'vary' section"):
        prepare_search({**data, "vary": {"train.lr": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="has no 'search' section"):
        prepare_search({k: v for k, v in data.items() if k != "search"})


def test_train_reads_a_search_config_as_its_base_run(demo_spec_path):
    """`train CONFIG` on a search config trains the base run: load_run_configs leaves the section out."""
    from engine.training.config import load_run_configs

    data = search_config(demo_spec_path)
    (cfg,) = load_run_configs(data)
    assert (cfg.model.name, cfg.train.epochs) == ("test_resnet", 1)
    assert "search" in data  # the caller's mapping is untouched


def test_relative_paths_resolve_against_the_config_file(demo_spec_path, tmp_path, workspace):
    from engine.augment.pipeline import save_pipeline_file
    from engine.augment.presets import preset

    save_pipeline_file(preset("medium", 32), tmp_path / "pipes" / "mine.yaml")
    data = search_config(demo_spec_path, params={"augment": ["light", "pipes/mine.yaml"]})
    data["dataset"] = str(demo_spec_path)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    base, search = prepare_search(path, trials=5, timeout=30)
    assert (search.trials, search.timeout) == (5, 30)
    assert search.params["augment"].choices == ["light", str(tmp_path / "pipes" / "mine.yaml")]


def test_suggestions_land_in_the_trial_config(demo_spec_path):
    params = parse_search_section({"params": {
        "train.lr": {"low": 1e-4, "high": 1e-1, "log": True}, "train.batch_size": {"low": 16, "high": 64, "step": 16},
        "model.name": ["test_resnet", "test_efficientnet"], "augment_strength": {"low": 0.0, "high": 1.0}}}).params
    trial = optuna.trial.FixedTrial({"train.lr": 0.01, "train.batch_size": 48, "model.name": "test_efficientnet",
                                     "augment_strength": 0.5})
    values = suggest(trial, params)
    assert values == {"train.lr": 0.01, "train.batch_size": 48, "model.name": "test_efficientnet",
                      "augment_strength": 0.5}
    base = search_config(demo_spec_path)
    base.pop("search")
    data = trial_config(base, values, name="s #0")
    assert (data["train"]["lr"], data["train"]["batch_size"], data["model"]["name"], data["name"]) == (
        0.01, 48, "test_efficientnet", "s #0")
    assert data["augment"] == augment_at_strength(0.5, 32)
    assert "lr" not in base["train"]  # the base is not modified


def test_strength_pipelines_grow_and_build(tmp_path):
    import numpy as np

    from engine.augment.pipeline import pipeline_from_dict
    from engine.search.space import augment_at_strength

    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    zero, full = augment_at_strength(0.0, 32), augment_at_strength(1.0, 32)
    assert len(zero["transform"]["transforms"]) == 2 and len(full["transform"]["transforms"]) == 5
    for spec in (zero, augment_at_strength(0.3, 32), full):
        assert pipeline_from_dict(spec)(image=image)["image"].shape == (32, 32, 3)
    with pytest.raises(ConfigError, match="augment_strength"):
        augment_at_strength(1.5, 32)
