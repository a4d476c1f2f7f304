"""The transform catalogue: every entry builds and applies with its defaults and at its bounds, round-trips
through albumentations' serialization, and its schema agrees with albumentations' own InitSchema."""

from __future__ import annotations

import inspect
import typing

import albumentations as A
import numpy as np
import pytest

from engine.augment import CATALOGUE, CATEGORIES, Pipeline, default_params, list_transforms, transform_spec
from engine.augment.catalogue import PARAM_KINDS
from engine.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:Argument.*are not valid for transform (RGBShift|PadIfNeeded)")

IMAGE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
NAMES = list(CATALOGUE)


def _extreme(spec, end: str):
    """The parameter at its lower ('min') or upper ('max') widget bound."""
    bound = spec.min if end == "min" else spec.max
    if spec.kind == "bool":
        return end == "max"
    if spec.kind == "choice":
        return spec.choices[0] if end == "min" else spec.choices[-1]
    if spec.kind in ("float", "int"):
        return bound
    return [bound] * (3 if spec.kind == "float_triple" else 2)


def _apply_and_round_trip(pipeline: Pipeline):
    spec = pipeline.to_spec()
    compose = A.from_dict(spec)
    assert A.to_dict(compose) == A.to_dict(pipeline.build())
    compose.set_random_seed(0)
    again = A.from_dict(spec)
    again.set_random_seed(0)
    for _ in range(3):
        a, b = compose(image=IMAGE)["image"], again(image=IMAGE)["image"]
        assert np.array_equal(a, b)  # serialize, deserialize, same seed -> same pixels
    return spec


def test_catalogue_size_and_categories():
    assert 30 <= len(CATALOGUE) <= 50
    assert {e.category for e in CATALOGUE.values()} == set(CATEGORIES)
    assert sum(len(list_transforms(c)) for c in CATEGORIES) == len(CATALOGUE)
    with pytest.raises(ConfigError, match="category"):
        list_transforms("fancy")
    with pytest.raises(ConfigError, match="'Nope' is not in the transform catalogue"):
        transform_spec("Nope")


@pytest.mark.parametrize("name", NAMES)
def test_entry_schema_is_consistent(name):
    entry = CATALOGUE[name]
    assert entry.description and entry.category in CATEGORIES and 0 <= entry.default_p <= 1
    cls = getattr(A, name)
    accepted = inspect.signature(cls.__init__).parameters
    for spec in entry.params:
        assert spec.kind in PARAM_KINDS
        assert spec.name in accepted, f"{name}.{spec.name} is not an albumentations argument"
        value = default_params(name, 64)[spec.name]
        if spec.kind == "choice":
            assert value in spec.choices
        elif spec.kind != "bool":
            for v in np.atleast_1d(value):
                assert spec.min <= v <= spec.max, (name, spec.name, value)
        if spec.kind in ("float_range", "int_range"):
            assert value[0] <= value[1]


def _schema_bounds(cls, field_name):
    """(lower, upper) bounds albumentations' InitSchema states for a field (None when unbounded)."""
    lo = hi = None
    info = cls.InitSchema.model_fields[field_name]
    for meta in info.metadata:
        lo = getattr(meta, "ge", getattr(meta, "gt", lo))
        hi = getattr(meta, "le", getattr(meta, "lt", hi))
        func = getattr(meta, "func", None)
        if func is not None and func.__closure__ and "check_range_bounds" in func.__qualname__:
            cells = dict(zip(func.__code__.co_freevars, (c.cell_contents for c in func.__closure__), strict=True))
            lo = cells.get("min_val", lo)
            hi = cells.get("max_val", hi)
    return lo, hi


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_choices_within_albumentations_schema(name):
    cls = getattr(A, name)
    for spec in CATALOGUE[name].params:
        info = cls.InitSchema.model_fields[spec.name]
        if spec.kind == "choice":
            literals = [a for a in typing.get_args(info.annotation) if a is not None]
            for arg in typing.get_args(info.annotation):  # Union[tuple, float, Literal[...]]
                literals += list(typing.get_args(arg)) if typing.get_origin(arg) is typing.Literal else []
            named = [c for c in spec.choices if isinstance(c, str)]
            assert set(named) <= set(literals), (name, spec.name, named, literals)
            continue
        if spec.kind == "bool":
            continue
        lo, hi = _schema_bounds(cls, spec.name)
        if lo is not None:
            assert spec.min >= lo, (name, spec.name, spec.min, lo)
        if hi is not None:
            assert spec.max <= hi, (name, spec.name, spec.max, hi)


@pytest.mark.parametrize("name", NAMES)
def test_entry_builds_applies_and_round_trips(name):
    base = Pipeline().added(name, image_size=64)
    _apply_and_round_trip(base)
    for end in ("min", "max"):
        changes = {s.name: _extreme(s, end) for s in CATALOGUE[name].params if not s.follows_image_size}
        spec = _apply_and_round_trip(base.with_step(0, p=1.0, **changes))
        stored = spec["transform"]["transforms"][0]
        for key, value in changes.items():
            param = transform_spec(name).param(key)
            assert param.coerce(stored[key]) == param.coerce(value) != None, (name, key, stored[key])  # noqa: E711
