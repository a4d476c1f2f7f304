"""One error family for everything the engine refuses.

Pages catch :class:`EngineError` and show ``str(e)``; anything else is a bug. Each subclass also
inherits the built-in exception it is closest to, so callers that only know Python's own
exceptions still catch it (the pattern of scikit-learn's ``NotFittedError``).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose. ``str(e)`` is a message for a person."""


class ConfigError(EngineError, ValueError):
    """A configuration field or value is invalid (names the field, what arrived, what is allowed)."""


class DatasetError(EngineError, ValueError):
    """A dataset spec, CSV, folder or image cannot be used as asked."""


class RunError(EngineError, RuntimeError):
    """A run directory is missing, incomplete or in a state that does not allow the request."""


class AnalysisError(EngineError, ValueError):
    """Predictions cannot be compared or combined as asked (different samples, classes, subsets)."""


class RunDamagedError(RunError):
    """A file of a run directory is there but cannot be used (garbage, wrong types, truncated); names the file."""
