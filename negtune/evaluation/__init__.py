"""Evaluation: math benchmarks (avg@n, maj@n, pass@k) and TOFU unlearning metrics, with reports and plots."""

from negtune.evaluation.curve import evaluate_checkpoints
from negtune.evaluation.math import MathEvalConfig, evaluate_math
from negtune.evaluation.metrics import benchmark_metrics, majority_vote, pass_at_k
from negtune.evaluation.report import compare_runs
from negtune.evaluation.tofu import (
    TofuEvalConfig,
    evaluate_tofu,
    forget_quality,
    model_utility,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)

__all__ = ["MathEvalConfig", "TofuEvalConfig", "benchmark_metrics", "compare_runs", "evaluate_checkpoints", "evaluate_math",
           "evaluate_tofu", "forget_quality", "majority_vote", "model_utility", "pass_at_k", "rouge_l_recall",
           "truth_ratio", "truth_ratio_score"]
