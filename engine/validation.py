"""Typed configs read from YAML: one strict pydantic base and one way to say what is wrong.

:class:`StrictModel` is the base of every config model (the dataset spec, the run config): an
unknown field is refused, and so is an assignment of a bad value. :func:`validate_model` validates
a mapping and turns pydantic's ``ValidationError`` into the engine's own error class, one line per
bad field in scikit-learn's words ("The 'train.optimizer' parameter must be one of 'adamw', 'adam',
'sgd' or 'rmsprop'. Got 'lamb' instead."), a misspelled field with the close names ("did you mean
'label_smoothing'?") and the allowed ones.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import EngineError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo must not be silently ignored); assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def validate_model(model: type[M], data: Mapping[str, Any], *, error: type[EngineError], what: str) -> M:
    """``model.model_validate(data)``; on failure raises ``error`` reading ``"<what> is invalid:"`` and
    one line per bad field (:func:`describe_errors`)."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise error(f"{what} is invalid:\n  - " + "\n  - ".join(describe_errors(err, model))) from None


def describe_errors(err: ValidationError, model: type[BaseModel]) -> list[str]:
    """One message per error of ``err`` (raised validating ``model``), naming the dotted field."""
    return [_describe(e, model) for e in err.errors()]


def _describe(e: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in e["loc"])
    kind = e.get("type", "")
    got = e.get("input")
    ctx = e.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{loc}: unknown field{close_fields(model, e['loc'])}"
    if kind == "missing":
        return f"The {loc!r} parameter is required."
    if kind == "literal_error":
        return f"The {loc!r} parameter must be one of {ctx.get('expected', '')}. Got {got!r} instead."
    if kind == "value_error" and ctx.get("error") is not None:
        cause = ctx["error"]
        if isinstance(cause, EngineError):  # a validator's own message names the field already
            return str(cause)
        return f"{loc}: {cause}" if loc else str(cause)
    got_text = "" if isinstance(got, Mapping) else f" Got {got!r} instead."
    return f"The {loc!r} parameter: {e['msg']}.{got_text}" if loc else f"{e['msg']}.{got_text}"


def close_fields(model: type[BaseModel], loc: tuple) -> str:
    """``"; did you mean 'x'? Allowed fields: [...]."`` for the unknown field at ``loc`` (the last part),
    from the fields of the model it sits in; ``""`` when that model cannot be found."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        nested = _model_in(getattr(field, "annotation", None))
        if nested is None:
            return ""
        model = nested
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Allowed fields: {names}."


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds: ``Model`` or ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None
