"""Pure parts of the search UI: the form's config, the Train form filled from a trial's config, Optuna's figures."""

from __future__ import annotations

import optuna
import pytest

from engine.augment.presets import preset
from engine.errors import ConfigError
from engine.search import augment_at_strength, parse_search_section
from studio.figures.search import SEARCH_FIGURES, search_figures
from studio.widgets.search import build_search_config
from studio.widgets.train_form import build_config, form_state_from_config

FORM = dict(models=["test_resnet"], image_size=32, k=2, epochs=1, workers=0, lr=(1e-4, 1e-1), weight_decay=None,
            label_smoothing=None, batches=[32], aug_mode="fixed", presets=["light"], strength=(0.0, 1.0),
            metric="macro_f1", evaluate_on="oof", trials=4, timeout_min=0, pruner=True, device="cpu", name="")


def test_search_form_builds_a_valid_search_section(demo_dataset, tmp_path):
    config = build_search_config(demo_dataset, tmp_path, **{**FORM, "models": ["test_resnet", "test_efficientnet"],
                                                           "batches": [16, 32], "aug_mode": "strength",
                                                           "strength": (0.2, 0.6), "timeout_min": 5})
    section = config["search"]
    assert section["params"] == {"train.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                                 "model.name": ["test_resnet", "test_efficientnet"], "train.batch_size": [16, 32],
                                 "augment_strength": {"low": 0.2, "high": 0.6}}
    assert (section["timeout"], section["pruner"], section["trials"]) == (300.0, "median", 4)
    parse_search_section(section)  # the engine accepts it
    assert config["model"]["name"] == "test_resnet" and config["split"]["k"] == 2


def test_search_form_refuses_an_empty_search(demo_dataset, tmp_path):
    with pytest.raises(ConfigError, match="Nothing to search"):
        build_search_config(demo_dataset, tmp_path, **{**FORM, "lr": None})
    presets = build_search_config(demo_dataset, tmp_path, **{**FORM, "lr": None, "aug_mode": "presets",
                                                            "presets": ["none", "heavy"]})
    assert presets["search"]["params"] == {"augment": ["none", "heavy"]}


def test_the_train_form_takes_a_trials_config(demo_dataset, tmp_path):
    config = build_config(demo_dataset, tmp_path, model="test_resnet", pretrained="none", image_size=32, k=4, holdout=0.2,
                          group=None, epochs=5, batch=48, optimizer="sgd", lr=0.02, scheduler="step", loss="focal",
                          smoothing="0.05", workers=1, augment="preset: medium", views=["identity"], device="cpu",
                          name="x", weight_decay=0.03)
    values, pipeline = form_state_from_config(config, label="best")
    assert pipeline is None and values["train_aug"] == "preset: medium"
    assert (values["train_k"], values["train_epochs"], values["train_batch"], values["train_lr"], values["train_wd"],
            values["train_ls"], values["train_opt"]) == (4, 5, 48, 0.02, 0.03, "0.05", "sgd")
    # a pipeline that is no preset (a strength search) becomes a choice of the form's augmentation picker
    strength = {**config, "augment": augment_at_strength(0.4, 32)}
    values, pipeline = form_state_from_config(strength, label="s best (trial 3)")
    assert pipeline == ("s best (trial 3)", strength["augment"]) and values["train_aug"] == "s best (trial 3)"
    rebuilt = build_config(demo_dataset, tmp_path, model="test_resnet", pretrained="none", image_size=32, k=4, holdout=0.2,
                           group=None, epochs=5, batch=48, optimizer="sgd", lr=0.02, scheduler="step", loss="focal",
                           smoothing="0.05", workers=1, augment=values["train_aug"], views=["identity"], device="cpu",
                           name="x", extra_pipelines=dict([pipeline]))
    assert rebuilt["augment"] == strength["augment"] != preset("light", 32)


def test_search_figures_are_optunas_own():
    study = optuna.create_study(direction="maximize")
    for lr, aug, value in ((0.01, "light", 0.8), (0.001, "none", 0.6), (0.03, "light", 0.7)):
        study.enqueue_trial({"train.lr": lr, "augment": aug})
        trial = study.ask()
        trial.suggest_float("train.lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("augment", ["none", "light"])
        trial.report(value / 2, 1)
        study.tell(trial, value)
    figures = search_figures(study, metric_label="oof accuracy")
    assert set(figures) == set(SEARCH_FIGURES)
    assert all(fig is not None for fig, _ in figures.values()), {k: c for k, (f, c) in figures.items() if f is None}
    history = figures["history"][0]
    assert [round(y, 3) for y in history.data[0].y] == [0.8, 0.6, 0.7]
    empty = search_figures(optuna.create_study(), metric_label="oof accuracy")
    assert empty["history"][0] is None and "No trial has finished" in empty["history"][1]
