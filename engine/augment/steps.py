"""The pipeline model the Augmentation lab edits: an ordered list of steps <-> albumentations' serialized dict.

A :class:`Step` is one top-level transform of the ``Compose``: its albumentations class name, its
probability ``p`` and every other serialized argument (a nested ``OneOf`` keeps its ``transforms``
list there). :class:`Pipeline` adds the ``Compose``'s own arguments, so converting a spec to steps
and back loses nothing. Every change returns a new :class:`Pipeline`; :meth:`Pipeline.to_spec`
builds the transforms with albumentations (strict validation) and returns ``A.to_dict``'s dict, so
the spec the studio shows, exports and saves is always one albumentations can load.

Errors name the step, the transform and the parameter::

    ConfigError: Step 2 (GaussNoise), parameter 'std_range': First value should be less than the second value...
"""

from __future__ import annotations

import difflib
import inspect
import json
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from engine.augment.catalogue import default_params, transform_spec
from engine.augment.pipeline import _albumentations
from engine.errors import ConfigError

_COMPOSE_NAMES = ("Compose", "Sequential")


@dataclass(frozen=True)
class Step:
    """One top-level transform: class name, probability, and its other serialized arguments."""

    name: str
    p: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"__class_fullname__": self.name, "p": self.p, **self.params}

    @classmethod
    def from_dict(cls, transform: dict[str, Any], *, where: str = "transform") -> Step:
        if not isinstance(transform, dict) or not isinstance(transform.get("__class_fullname__"), str):
            raise ConfigError(
                f"The {where} must be a mapping with a '__class_fullname__' key naming an albumentations "
                f"transform; got {_short(transform)}."
            )
        params = {k: v for k, v in transform.items() if k not in ("__class_fullname__", "p")}
        p = transform.get("p", 0.5)
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise ConfigError(
                f"The {where} ({transform['__class_fullname__']}) has p={p!r}; p must be a number in [0, 1]."
            )
        return cls(transform["__class_fullname__"], float(p), _plain(params))


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of steps plus the ``Compose``'s own arguments (kept as read)."""

    steps: tuple[Step, ...] = ()
    compose_args: dict[str, Any] = field(default_factory=dict)

    # --- conversion ------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None, *, source: str = "augmentation pipeline") -> Pipeline:
        """Steps of a serialized pipeline (``A.to_dict`` form). ``None`` gives an empty pipeline."""
        if spec is None:
            return cls()
        if not isinstance(spec, dict) or not isinstance(spec.get("transform"), dict):
            raise ConfigError(
                f"The {source} must be albumentations' serialized dict with a 'transform' mapping "
                f"(what A.to_dict returns); got {_short(spec)}."
            )
        root = spec["transform"]
        name = root.get("__class_fullname__")
        if name not in _COMPOSE_NAMES:
            # A single transform at the top: treat it as a one-step pipeline.
            return cls((Step.from_dict(root, where=f"{source}'s transform"),))
        transforms = root.get("transforms", [])
        if not isinstance(transforms, list):
            raise ConfigError(f"The {source}'s 'transforms' must be a list; got {type(transforms).__name__}.")
        steps = tuple(Step.from_dict(t, where=f"step {i + 1} of the {source}") for i, t in enumerate(transforms))
        compose_args = {k: v for k, v in root.items() if k not in ("__class_fullname__", "transforms")}
        return cls(steps, _plain(compose_args))

    def build(self, *, save_applied_params: bool = False, seed: int | None = None):
        """The ``A.Compose`` of these steps; :class:`ConfigError` names the step, transform and parameter."""
        A = _albumentations()
        transforms = [build_transform(s.to_dict(), where=f"Step {i + 1}") for i, s in enumerate(self.steps)]
        args = {k: v for k, v in self.compose_args.items() if k in inspect.signature(A.Compose.__init__).parameters}
        args.pop("save_applied_params", None)
        args.pop("seed", None)
        try:
            return A.Compose(transforms, save_applied_params=save_applied_params, seed=seed, **args)
        except Exception as e:  # Compose validates its own arguments (bbox_params, ...)
            raise ConfigError(f"The pipeline's Compose arguments are invalid: {type(e).__name__}: {e}") from None

    def to_spec(self) -> dict[str, Any]:
        """Albumentations' serialized dict of the pipeline (validated by building it), lists for tuples."""
        return _plain(_albumentations().to_dict(self.build()))

    # --- edits (each returns a new pipeline) -----------------------------------------------------
    def added(self, name: str, *, image_size: int = 224, p: float | None = None) -> Pipeline:
        """Append a catalogue transform with the catalogue's defaults (sizes follow ``image_size``)."""
        entry = transform_spec(name)
        step = Step(name, entry.default_p if p is None else float(p), _plain(default_params(name, image_size)))
        return replace(self, steps=(*self.steps, step))

    def removed(self, index: int) -> Pipeline:
        self._check_index(index)
        return replace(self, steps=self.steps[:index] + self.steps[index + 1 :])

    def moved(self, index: int, offset: int) -> Pipeline:
        """Move step ``index`` by ``offset`` places (-1 = up); clipped at both ends."""
        self._check_index(index)
        target = min(max(index + offset, 0), len(self.steps) - 1)
        steps = list(self.steps)
        steps.insert(target, steps.pop(index))
        return replace(self, steps=tuple(steps))

    def with_step(self, index: int, *, p: float | None = None, **params: Any) -> Pipeline:
        """Step ``index`` with a new probability and / or parameters (other parameters kept)."""
        self._check_index(index)
        old = self.steps[index]
        new = Step(old.name, old.p if p is None else float(p), {**old.params, **_plain(params)})
        return replace(self, steps=self.steps[:index] + (new,) + self.steps[index + 1 :])

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.steps):
            raise ConfigError(f"Step index {index} is out of range; the pipeline has {len(self.steps)} steps.")


def parse_pipeline(text: str, *, source: str = "pipeline text") -> Pipeline:
    """A validated :class:`Pipeline` from YAML or JSON text of a serialized pipeline (what ``A.save`` writes).

    Unlike :func:`engine.augment.parse_pipeline_text`, errors name the step, transform and parameter.
    """
    import yaml

    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise ConfigError(f"The {source} is not valid YAML or JSON: {e}") from None
    pipeline = Pipeline.from_spec(data, source=source)
    pipeline.build()
    return pipeline


def build_transform(transform: dict[str, Any], *, where: str = "Transform"):
    """Build one serialized transform (nested composes included) with albumentations' strict validation."""
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY, shorten_class_name

    step = Step.from_dict(transform, where=where.lower())
    try:
        cls = SERIALIZABLE_REGISTRY[shorten_class_name(step.name)]
    except KeyError:
        close = difflib.get_close_matches(step.name, list(SERIALIZABLE_REGISTRY), n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"{where}: {step.name!r} is not an albumentations transform.{hint}") from None
    args = dict(step.params)
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "args", "kwargs", "strict")]
    # A.to_dict writes a few keys that are no init argument (PadIfNeeded's 'padding'); they are checked below.
    unknown = {k: args.pop(k) for k in list(args) if k not in accepted}
    if isinstance(args.get("transforms"), list):
        args["transforms"] = [
            build_transform(t, where=f"{where} ({step.name}), inner transform {i + 1}")
            for i, t in enumerate(args["transforms"])
        ]
    if getattr(cls.__init__, "__name__", "") == "custom_init":  # albumentations' validating wrapper
        args["strict"] = True  # otherwise it silently falls back to defaults on some errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            transform = cls(p=step.p, **args)
        except Exception as e:  # albumentations raises ValueError (wrapping pydantic's), TypeError, ...
            raise ConfigError(f"{where} ({step.name}), {_explain(e)}") from None
    if unknown and set(unknown) - set(transform.to_dict()["transform"]):
        bad = [k for k in unknown if k not in transform.to_dict()["transform"]]
        raise ConfigError(
            f"{where} ({step.name}): {', '.join(map(repr, bad))} is not a parameter of {step.name} in "
            f"albumentations {_albumentations().__version__}; its parameters are {accepted}."
        )
    return transform


def _explain(error: Exception) -> str:
    """ "parameter 'x': message" from albumentations' / pydantic's error, or the error's own text."""
    cause = error.__cause__
    if cause is None or not hasattr(cause, "errors"):
        return f"invalid arguments: {type(error).__name__}: {error}"
    by_param: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for item in cause.errors():
        loc = item.get("loc") or ("?",)
        param = str(loc[0])  # a union type adds one loc entry per alternative: report them together
        msg = str(item.get("msg", "")).removeprefix("Value error, ")
        if msg not in by_param.setdefault(param, []):
            by_param[param].append(msg)
        inputs[param] = item.get("input")
    parts = []
    for param, msgs in by_param.items():
        text = " or ".join(msgs)
        if "got" not in text:
            text += f" (got {_short(inputs[param])})"
        parts.append(f"parameter {param!r}: {text}")
    return "; ".join(parts) + "."


def _plain(value: Any) -> Any:
    """Tuples -> lists, numpy scalars -> Python: the form YAML / JSON give back, so specs compare equal."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not serializable")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
