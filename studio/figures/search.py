"""Figures of an Optuna search: Optuna's own plotly figures (``optuna.visualization``), laid out for the studio.

Pure: a study in, figures out. A figure that needs more trials than the study has (parameter
importances need two complete trials with different values) comes back as None with the reason.
"""

from __future__ import annotations

import warnings

import plotly.graph_objects as go

SEARCH_FIGURES = {
    "history": "Optimization history",
    "importances": "Parameter importances",
    "parallel": "Parallel coordinates",
    "slice": "Slice",
    "intermediate": "Per-epoch values (pruning)",
}


def _layout(fig: go.Figure, height: int = 420) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def search_figures(study, *, metric_label: str) -> dict[str, tuple[go.Figure | None, str]]:
    """``{key: (figure or None, caption or the reason it is missing)}`` for every key of :data:`SEARCH_FIGURES`."""
    import optuna.visualization as ov
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    out: dict[str, tuple[go.Figure | None, str]] = {}
    if not complete:
        why = "No trial has finished with a score yet."
        out.update({k: (None, why) for k in ("history", "importances", "parallel", "slice")})
    else:
        with warnings.catch_warnings():  # optuna's ExperimentalWarning and friends: not for the user
            warnings.simplefilter("ignore")
            out["history"] = (_layout(ov.plot_optimization_history(study, target_name=metric_label)),
                              f"{metric_label} of each complete trial and the best so far.")
            out["parallel"] = (_layout(ov.plot_parallel_coordinate(study, target_name=metric_label)),
                               "Each line is a complete trial: its parameter values and its score.")
            out["slice"] = (_layout(ov.plot_slice(study, target_name=metric_label), height=380),
                            f"{metric_label} against each parameter alone.")
            out["importances"] = _importances(study, complete, metric_label)
    if reported:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["intermediate"] = (_layout(ov.plot_intermediate_values(study)),
                                   "The validation metric each trial reported per epoch (step = fold x epochs + "
                                   "epoch); the median pruner stops a trial below the median of earlier ones here.")
    else:
        out["intermediate"] = (None, "No trial has reported an epoch yet.")
    return out


def _importances(study, complete: list, metric_label: str) -> tuple[go.Figure | None, str]:
    import optuna.visualization as ov

    varied = {name for name in complete[0].params if len({repr(t.params.get(name)) for t in complete}) > 1}
    if len(complete) < 2 or not varied:
        return None, "Parameter importances need at least two complete trials with different parameter values."
    try:
        fig = ov.plot_param_importances(study, target_name=metric_label)
    except (ValueError, RuntimeError) as e:  # e.g. every complete trial scored the same
        return None, f"Parameter importances cannot be computed yet: {e}"
    return _layout(fig, height=320), "fANOVA importance of each parameter for the score (Optuna's default)."
