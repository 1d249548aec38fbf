"""TOFU metrics as pure functions of per-example numbers (open-unlearning's definitions; TOFU: Maini et al.
2024, "TOFU: A Task of Fictitious Unlearning for LLMs"). README.md, "Evaluation > TOFU unlearning", lists them."""

from __future__ import annotations

import numpy as np

SPLITS = ("forget", "retain", "real_authors", "world_facts")
UTILITY_KEYS = tuple(f"{s}_{m}" for s in ("retain", "real_authors", "world_facts")
                     for m in ("prob", "rouge", "truth_ratio"))


def truth_ratio(paraphrased_nll, perturbed_nll) -> np.ndarray:
    """Per-example truth ratio from mean-token NLLs (open-unlearning):

        TR = P̄_perturbed / P̄_paraphrased,  P̄ = exp(−mean token NLL),

    with P̄_perturbed the geometric mean over the perturbed answers, i.e. exp(−mean_j NLL_j). TOFU's own code
    disagrees with itself here: ``utils.get_model_utility`` takes the arithmetic mean of the perturbed
    probabilities, ``aggregate_eval_stat.get_model_utility`` and both ``get_forget_quality`` the mean of their
    NLLs (the geometric mean); negtune follows the latter, as open-unlearning does (``aggregate_to_1D`` over the
    losses in ``evals/metrics/memorization.truth_ratio``).
    ``paraphrased_nll``: (N,); ``perturbed_nll``: (N, K) or N lists (K may differ per example).
    For real authors / world facts the gold answer plays the paraphrased answer's role.
    """
    para = np.asarray(paraphrased_nll, dtype=np.float64)
    pert = np.array([np.mean(np.asarray(p, dtype=np.float64)) for p in perturbed_nll])
    if para.shape != pert.shape:
        raise ValueError(f"truth_ratio: {para.shape[0]} paraphrased vs {pert.shape[0]} perturbed examples")
    return np.exp(para - pert)


def truth_ratio_score(tr, split: str) -> float:
    """Forget: mean(min(TR, 1/TR)) (closer to 1 = the model cannot tell true from false);
    retain / real authors / world facts: mean(max(0, 1 − TR)) (higher = prefers the truth)."""
    tr = np.asarray(tr, dtype=np.float64)
    if split == "forget":
        return float(np.mean(np.minimum(tr, 1.0 / tr)))
    return float(np.mean(np.maximum(0.0, 1.0 - tr)))


def normalized_probability(correct_nll, wrong_nll) -> np.ndarray:
    """Real authors / world facts: p_c / (p_c + Σ_j p_wrong_j) with p = exp(−mean token NLL)."""
    correct = np.exp(-np.asarray(correct_nll, dtype=np.float64))
    wrong = np.array([np.sum(np.exp(-np.asarray(w, dtype=np.float64))) for w in wrong_nll])
    return correct / (correct + wrong)


def forget_quality(tr_unlearned, tr_retain) -> float:
    """p-value of the two-sample KS test between the forget-set truth ratios of the unlearned model and of a
    model never trained on the forget set (``scipy.stats.ks_2samp``); 1.0 = indistinguishable."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(tr_unlearned, dtype=np.float64), np.asarray(tr_retain, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("forget_quality: empty truth-ratio list")
    return float(ks_2samp(a, b).pvalue)


def model_utility(metrics: dict[str, float]) -> float:
    """Harmonic mean of the 9 numbers {prob, rouge, truth_ratio} × {retain, real_authors, world_facts}
    (keys ``retain_prob``, ``real_authors_rouge``, ...). Any zero makes it 0, as in open-unlearning."""
    from scipy.stats import hmean

    missing = [k for k in UTILITY_KEYS if k not in metrics or metrics[k] is None]
    if missing:
        raise KeyError(f"model_utility: missing {', '.join(missing)}")
    values = [float(metrics[k]) for k in UTILITY_KEYS]
    return 0.0 if min(values) <= 0 else float(hmean(values))


def rouge_l_recall(generations: list[str], golds: list[str]) -> list[float]:
    """ROUGE-L recall of each generation against its gold answer (``rouge_score``, Porter stemmer on)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(gold, gen)["rougeL"].recall for gen, gold in zip(generations, golds)]
