"""Analysis: what the folds, views and runs predict, compared like for like, and the ensemble to submit.

Everything works on arrays ``(members, samples, classes)`` plus one ordered class list, vectorized
(no Python loop over samples), and reads run directories without importing the training code.

Loading (:mod:`engine.analysis.load`)
    ``load_predictions(runs, subset, folds=, views=) -> PredictionSet`` — aligned ``logits``,
    ``members`` (``Member(run_id, fold, view)``), ``sample_ids``, ``labels`` (-1 for test),
    ``classes``, ``fold_of`` (OOF). ``PredictionSet.merge_tta(mode, views)``, ``.select(...)``,
    ``.proba()``. ``open_run`` / ``open_runs`` -> ``RunInfo`` (the run store's ``RunRecord``: config
    fields such as label smoothing, model, views, dataset; refused when damaged or missing files).
Metrics (:mod:`engine.analysis.metrics`)
    ``score(y, proba=, y_pred=)`` -> accuracy, balanced_accuracy, macro_f1, log_loss, brier, ece
    (top-label, 15 equal-width bins); ``per_class``, ``confusion``, ``reliability``, ``entropy``,
    ``softmax``; ``batch_accuracy`` / ``batch_macro_f1`` for many label vectors at once.
Voting (:mod:`engine.analysis.voting`) and TTA merging (:mod:`engine.analysis.tta`)
    ``soft_vote``, ``logit_mean``, ``geometric_mean``, ``hard_vote`` (ties to the lowest class
    index, as scikit-learn's ``VotingClassifier``), ``combine(logits, voting, weights)``;
    ``merge_views(logits, mode)`` with modes ``mean``, ``geometric``, ``max``, ``logit_mean``.
Bootstrap (:mod:`engine.analysis.bootstrap`)
    ``paired_bootstrap(y, a, b, metric=) -> BootstrapResult`` (difference A - B, 95% percentile
    interval, seeded).
Calibration (:mod:`engine.analysis.calibration`)
    ``fit_temperature``, ``apply_temperature``, ``confidence_histogram``, ``entropy_histogram``.
Comparisons (:mod:`engine.analysis.compare`), each a dataclass of DataFrames with ``to_dict()``
    ``compare_folds(run) -> FoldComparison``, ``fold_confusions(run)``, ``fold_confidences(run, subset)``;
    ``compare_voting(preds) -> VotingComparison``;
    ``compare_tta(runs) -> TTAComparison``; ``compare_label_smoothing(runs) ->
    LabelSmoothingComparison`` (``find_label_smoothing_groups`` finds the runs);
    ``compare_augmentation(runs) -> AugmentationComparison`` (``find_augmentation_groups``).
Ensembles (:mod:`engine.analysis.ensemble`)
    ``search_ensembles(preds) -> EnsembleSearch`` (exhaustive up to 12 members, else greedy),
    ``exhaustive_search``, ``greedy_selection -> GreedyResult`` (Caruana et al., 2004).
Label issues (:mod:`engine.analysis.label_issues`) and runs on common samples (:mod:`engine.analysis.common_samples`)
    ``label_issues.label_issues(runs) -> LabelIssues`` (confident learning on OOF + holdout: ranked suspect labels,
    the estimated noise matrix), ``find_label_issues(labels, proba)`` on arrays;
    ``compare_on_common_samples(run_a, run_b)`` (runs that do not share a split, e.g. with and without
    label overrides), ``find_override_pairs``.
Report (:mod:`engine.analysis.report`)
    ``analyze_runs(runs) -> AnalysisReport`` — everything above (``python -m engine analyze``).

Submissions are written by :func:`engine.submission.make_submission`.
"""

from engine.analysis.bootstrap import BootstrapResult, paired_bootstrap
from engine.analysis.calibration import apply_temperature, fit_temperature
from engine.analysis.common_samples import CommonSampleComparison, compare_on_common_samples, find_override_pairs
from engine.analysis.compare import (
    AugmentationComparison,
    FoldComparison,
    LabelSmoothingComparison,
    TTAComparison,
    VotingComparison,
    compare_augmentation,
    compare_folds,
    compare_label_smoothing,
    compare_tta,
    compare_voting,
    find_augmentation_groups,
    find_label_smoothing_groups,
    fold_confidences,
    fold_confusions,
)
from engine.analysis.ensemble import EnsembleSearch, GreedyResult, exhaustive_search, greedy_selection, search_ensembles
from engine.analysis.label_issues import LabelIssues, find_label_issues
from engine.analysis.load import Member, PredictionSet, RunInfo, load_predictions, open_run, open_runs
from engine.analysis.metrics import score
from engine.analysis.report import AnalysisReport, analyze_runs
from engine.analysis.tta import TTA_MODES, merge_views
from engine.analysis.voting import VOTING_KINDS, combine, hard_vote, soft_vote

__all__ = [
    "TTA_MODES", "VOTING_KINDS", "AnalysisReport", "AugmentationComparison", "BootstrapResult",
    "CommonSampleComparison", "EnsembleSearch", "FoldComparison", "GreedyResult", "LabelIssues",
    "LabelSmoothingComparison", "Member", "PredictionSet", "RunInfo", "TTAComparison", "VotingComparison",
    "analyze_runs", "apply_temperature", "combine", "compare_augmentation", "compare_folds", "compare_label_smoothing",
    "compare_on_common_samples", "compare_tta", "compare_voting", "exhaustive_search", "find_augmentation_groups",
    "find_label_issues", "find_label_smoothing_groups", "find_override_pairs", "fit_temperature", "fold_confidences",
    "fold_confusions", "greedy_selection", "hard_vote", "load_predictions", "merge_views", "open_run", "open_runs",
    "paired_bootstrap", "score",
    "search_ensembles", "soft_vote",
]
