"""The pipeline model: steps <-> albumentations' serialized dict, edits, validation errors, files."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from engine.augment import (
    Pipeline,
    dump_pipeline,
    load_pipeline_file,
    parse_pipeline_text,
    preset,
    save_pipeline_file,
)
from engine.augment.steps import _plain
from engine.errors import ConfigError


def _names(p: Pipeline) -> list[str]:
    return [s.name for s in p.steps]


def test_edits_add_remove_move_and_change():
    p = Pipeline().added("HorizontalFlip").added("Rotate").added("GaussNoise")
    assert _names(p) == ["HorizontalFlip", "Rotate", "GaussNoise"]
    assert _names(p.moved(2, -1)) == ["HorizontalFlip", "GaussNoise", "Rotate"]
    assert _names(p.moved(0, -1)) == _names(p)  # clipped at the top
    assert _names(p.moved(0, +5)) == ["Rotate", "GaussNoise", "HorizontalFlip"]
    assert _names(p.removed(1)) == ["HorizontalFlip", "GaussNoise"]
    changed = p.with_step(1, p=0.9, limit=[-30, 30])
    step = changed.to_spec()["transform"]["transforms"][1]
    assert step["p"] == 0.9 and step["limit"] == [-30.0, 30.0] and step["border_mode"] == 0
    assert p.steps[1].p == 0.5  # edits return new pipelines
    with pytest.raises(ConfigError, match="out of range"):
        p.removed(3)


def test_added_sizes_follow_image_size():
    spec = Pipeline().added("RandomResizedCrop", image_size=96).added("Resize", image_size=96).to_spec()
    crop, resize = spec["transform"]["transforms"]
    assert crop["size"] == [96, 96] and crop["p"] == 1.0
    assert (resize["height"], resize["width"]) == (96, 96)


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_spec_round_trip_is_lossless(name):
    spec = preset(name, 64)
    pipeline = Pipeline.from_spec(spec)
    assert pipeline.to_spec() == _plain(spec)
    assert Pipeline.from_spec(pipeline.to_spec()) == pipeline
    assert A.to_dict(A.from_dict(pipeline.to_spec())) == spec


def test_compose_arguments_are_kept():
    spec = _plain(A.to_dict(A.Compose([A.HorizontalFlip()], is_check_shapes=False)))
    assert Pipeline.from_spec(spec).to_spec()["transform"]["is_check_shapes"] is False


@pytest.mark.parametrize(
    ("pipeline", "match"),
    [
        (
            Pipeline().added("GaussNoise").with_step(0, std_range=[0.5, 0.1]),
            r"Step 1 \(GaussNoise\), parameter 'std_range'",
        ),
        (Pipeline().added("HorizontalFlip").added("Rotate").with_step(1, p=1.5), r"Step 2 \(Rotate\), parameter 'p'"),
        (Pipeline().added("CLAHE").with_step(0, tile_grid_size=[0, 8]), r"CLAHE\), parameter 'tile_grid_size'"),
        (Pipeline().added("Affine").with_step(0, scale="big"), r"Affine\), parameter 'scale'"),
        (Pipeline().added("Resize").with_step(0, colour=1), r"'colour' is not a parameter of Resize"),
    ],
)
def test_invalid_parameter_names_transform_and_parameter(pipeline, match):
    with pytest.raises(ConfigError, match=match):
        pipeline.to_spec()


def test_unknown_and_nested_transforms():
    def spec(*transforms):
        return {"transform": {"__class_fullname__": "Compose", "transforms": list(transforms)}}

    with pytest.raises(ConfigError, match="'GaussNoize' is not an albumentations transform. Did you mean 'GaussNoise'"):
        Pipeline.from_spec(spec({"__class_fullname__": "GaussNoize", "p": 1})).to_spec()
    bad_inner = {
        "__class_fullname__": "OneOf",
        "p": 1,
        "transforms": [{"__class_fullname__": "Blur", "blur_limit": "x"}],
    }
    with pytest.raises(ConfigError, match=r"OneOf\), inner transform 1 \(Blur\), parameter 'blur_limit'"):
        Pipeline.from_spec(spec(bad_inner)).to_spec()
    with pytest.raises(ConfigError, match="__class_fullname__"):
        Pipeline.from_spec(spec({"p": 1}))
    with pytest.raises(ConfigError, match="'transform' mapping"):
        Pipeline.from_spec({"transforms": []})
    single = Pipeline.from_spec({"transform": {"__class_fullname__": "HorizontalFlip", "p": 1.0}})
    assert [s.name for s in single.steps] == ["HorizontalFlip"]


def test_yaml_and_json_files_load_with_albumentations(tmp_path):
    spec = Pipeline.from_spec(preset("medium", 48)).added("Normalize").to_spec()
    image = np.random.default_rng(1).integers(0, 256, (60, 50, 3), dtype=np.uint8)
    for suffix, fmt in ((".yaml", "yaml"), (".json", "json")):
        path = save_pipeline_file(spec, tmp_path / f"current{suffix}")
        loaded = A.load(str(path), data_format=fmt)  # a user's notebook reads what the studio saved
        assert _plain(A.to_dict(loaded)) == spec == load_pipeline_file(path)
        ours = Pipeline.from_spec(spec).build(seed=3)
        loaded.set_random_seed(3)
        assert np.array_equal(ours(image=image)["image"], loaded(image=image)["image"])
    assert parse_pipeline_text(dump_pipeline(spec, "json")) == spec


def test_bad_text_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_pipeline_text("transform: [unclosed")
    with pytest.raises(ConfigError, match="'transform' key"):
        parse_pipeline_text("- just a list")


def test_parse_pipeline_names_what_is_wrong():
    from engine.augment import parse_pipeline

    good = dump_pipeline(preset("light", 32), "yaml")
    assert parse_pipeline(good).to_spec() == _plain(preset("light", 32))
    with pytest.raises(ConfigError, match="The pasted text is not valid YAML or JSON"):
        parse_pipeline("transform: [unclosed", source="pasted text")
    bad = good.replace("HorizontalFlip\n    p: 0.5", "HorizontalFlip\n    p: 5")
    with pytest.raises(ConfigError, match=r"Step 2 \(HorizontalFlip\), parameter 'p'"):
        parse_pipeline(bad)
