"""How a training session ended, in words for a person: the ``error`` a failed run records.

Used by whoever records a session's final state (:func:`engine.training.fit.train_run` for a script's
own process, :mod:`engine.jobs.runner` for a job), so a failure reads the same either way.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path


def error_text(exc: BaseException, run_dir: str | Path) -> str:
    """The message stored in ``status.error``: the traceback's last line plus what to do about it."""
    from engine.errors import EngineError
    from engine.runs import log_path

    head = str(exc) if isinstance(exc, EngineError) else traceback.format_exception_only(type(exc), exc)[-1].strip()
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = (f"the disk is full: free disk space where the run directory lies ({Path(run_dir).parent}), then "
                "resume the run (finished folds are kept)")
    elif "out of memory" in text:
        hint = "the batch does not fit in memory: lower train.batch_size (or image_size), then resume the run"
    elif isinstance(exc, (FileNotFoundError, PermissionError)):
        hint = "a file the run needs cannot be read: check the dataset and weights paths, then resume the run"
    else:
        hint = f"the full traceback is in {log_path(run_dir)}; fix the cause, then resume the run"
    return f"{head} — {hint}"
