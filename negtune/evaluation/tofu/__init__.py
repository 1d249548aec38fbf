"""TOFU unlearning evaluation with open-unlearning's definitions (TOFU: Maini et al. 2024; the metric table is in
README.md, "Evaluation > TOFU unlearning").

On each eval set (forget, retain, real authors, world facts): answer probability, ROUGE-L recall of greedy
generations, truth ratio; then forget quality (KS test of forget-set truth ratios against a retain-only
model's, read from its eval log) and model utility (harmonic mean of the 9 non-forget numbers).

- :mod:`~negtune.evaluation.tofu.metrics`: the metrics as pure functions of per-example numbers;
- :mod:`~negtune.evaluation.tofu.scorer`: :class:`TofuScorer` (batched answer NLLs, question + answer tokenized
  together and the question masked as TOFU and open-unlearning do, optional TOFU-style ``max_length``; batched
  greedy generation; the prompt format's fingerprint) and :func:`score_split` (per-example values of one eval set);
- :mod:`~negtune.evaluation.tofu.run`: :class:`TofuEvalConfig`, :func:`evaluate_tofu` and the eval log
  (``eval_log.json``, what another run's ``--retain-log`` reads);
- :mod:`~negtune.evaluation.tofu.report`: :func:`write_tofu_report` (``report.md`` + ``tofu_metrics.png``).
"""

from negtune.evaluation.tofu.metrics import (
    SPLITS,
    UTILITY_KEYS,
    forget_quality,
    model_utility,
    normalized_probability,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)
from negtune.evaluation.tofu.report import write_tofu_report
from negtune.evaluation.tofu.run import (
    LOG_VERSION,
    TofuEvalConfig,
    aggregate,
    evaluate_tofu,
    fingerprint,
    load_eval_sets,
    read_eval_log,
)
from negtune.evaluation.tofu.scorer import PROBE, TEMPLATES, TofuScorer, score_split

__all__ = ["LOG_VERSION", "PROBE", "SPLITS", "TEMPLATES", "UTILITY_KEYS", "TofuEvalConfig", "TofuScorer", "aggregate",
           "evaluate_tofu", "fingerprint", "forget_quality", "load_eval_sets", "model_utility",
           "normalized_probability", "read_eval_log", "rouge_l_recall", "score_split", "truth_ratio",
           "truth_ratio_score", "write_tofu_report"]
