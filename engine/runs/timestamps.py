"""Timestamps of the run directory, one rule: written in UTC with its offset, read naive ones as UTC.

Every timestamp the engine writes (``status.json``, study files, submissions' records) comes from
:func:`now_iso` — ISO-8601, UTC, milliseconds, ``+00:00``. A timestamp without an offset (written by
hand, or by an older tool) is read as UTC too, never as the reader's local time, so the studio and
the command line agree on a heartbeat's age whatever the machine's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    """The current time as ISO-8601 in UTC with its offset, e.g. ``2024-05-01T12:00:00.123+00:00``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from a status timestamp (ISO-8601 text, naive read as UTC; or POSIX seconds);
    None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_between(start: Any, end: Any = None) -> float | None:
    """Seconds from ``start`` to ``end`` (default: now), never negative; None when ``start`` is unreadable."""
    t0 = parse_time(start)
    if t0 is None:
        return None
    t1 = parse_time(end) if end is not None else datetime.now(UTC)
    return None if t1 is None else max((t1 - t0).total_seconds(), 0.0)


def seconds_since(value: Any) -> float | None:
    """Age of a timestamp in seconds (negative for one in the future); None when unreadable."""
    moment = parse_time(value)
    return None if moment is None else (datetime.now(UTC) - moment).total_seconds()
