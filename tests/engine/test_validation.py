"""One strict base and one error formatter for every typed config: the dataset spec and the run config."""

from __future__ import annotations

import pytest

from engine.data.spec import DatasetSpec, parse_spec
from engine.errors import ConfigError, DatasetError
from engine.training.config import ModelConfig, RunConfig, load_run_configs
from engine.validation import StrictModel


def test_both_configs_share_the_strict_base():
    assert issubclass(DatasetSpec, StrictModel) and issubclass(RunConfig, StrictModel)
    with pytest.raises(ValueError):  # assignments are validated too
        ModelConfig().drop_rate = 2.0


@pytest.mark.parametrize(("data", "match"), [
    ({"name": "x", "layout": "folder", "train": {"imgs": "a"}},
     r"train\.imgs: unknown field; did you mean 'images'\? Allowed fields: \['images', 'csv'"),
    ({"name": "x", "layout": "folder", "train": {}, "test": {"imagse": "t"}},  # inside an optional section
     r"test\.imagse: unknown field; did you mean 'images'\?"),
    ({"name": "x", "layout": "folder", "trian": {}}, r"trian: unknown field; did you mean 'train'\?"),
    ({"layout": "folder", "train": {}}, r"The 'name' parameter is required\."),
    ({"name": "x", "layout": "grid", "train": {}}, r"The 'layout' parameter must be one of 'folder' or 'csv'\. "
                                                    r"Got 'grid' instead\."),
])
def test_dataset_spec_errors_read_like_run_config_errors(data, match):
    with pytest.raises(DatasetError, match=match) as info:
        parse_spec(data)
    assert str(info.value).startswith("Dataset spec '<dict>' is invalid:\n  - ")


def test_every_bad_field_is_listed_once_in_the_run_config_error():
    with pytest.raises(ConfigError) as info:
        load_run_configs({"dataset": "d.yaml", "modle": {}, "train": {"lr": -1, "label_smothing": 0.1}})
    lines = str(info.value).splitlines()
    assert lines[0] == "The run config is invalid:"
    assert sorted(line.split(":")[0].strip(" -") for line in lines[1:]) == [
        "The 'train.lr' parameter", "modle", "train.label_smothing"]
    assert any("did you mean 'model'?" in line for line in lines)
