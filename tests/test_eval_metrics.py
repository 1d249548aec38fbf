"""Evaluation metric functions on hand-made inputs (math: pass@k, maj@n; TOFU: truth ratio, forget quality,
model utility, normalised probability, ROUGE-L)."""

import itertools
import math

import numpy as np
import pytest

from negtune.evaluation import (
    benchmark_metrics,
    forget_quality,
    majority_vote,
    model_utility,
    pass_at_k,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)
from negtune.evaluation.metrics import problem_summary
from negtune.evaluation.tofu import UTILITY_KEYS, normalized_probability


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_pass_at_k_equals_enumeration_over_subsets(n):
    """The estimator is the exact fraction of size-k subsets of the n samples that hold a correct one."""
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            expected = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_closed_form_and_edges():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - math.comb(7, 2) / math.comb(10, 2))  # 1 - 21/45
    assert pass_at_k(10, 3, 2) == pytest.approx(24 / 45)
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # fewer than k wrong samples: every k-subset holds a correct one
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)  # exact at large n
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(4, 5, 1)


def test_majority_vote_ties_go_to_the_first_sampled_answer():
    assert majority_vote(["3", "5", "5", "3"]) == 0  # 2-2 tie: "3" appeared first
    assert majority_vote(["5", "3", "3", "5"]) == 0
    assert majority_vote([None, "7", "8", "8"]) == 2  # "8" wins 2-1; index of its first appearance
    assert majority_vote([None, "7", "8"]) == 1  # 1-1 tie, None never votes
    assert majority_vote([None, None]) is None
    assert majority_vote(["x + 1", "x+1", "2"]) == 0  # whitespace does not split a vote


def test_majority_vote_groups_answers_by_math_verify_equivalence():
    """Raw strings: "3" wins 2-1-1-1; as math-verify sees them 1/2 = \\frac{1}{2} = 0.5 wins 3-2."""
    from negtune.evaluation.equivalence import vote_clusters

    answers = ["3", "1/2", "\\frac{1}{2}", "3", "0.5", None]
    assert majority_vote(answers) == 0  # string keys alone: "3"
    clusters, stats = vote_clusters([answers, ["7", "7"], [None]], "math", workers=0)
    assert clusters == [[0, 1, 1, 0, 1, None], [0, 0], [None]]
    assert majority_vote(answers, clusters[0]) == 1  # the first "1/2"
    # one representative per cluster: "1/2" vs "3"; "\frac{1}{2}" and "0.5" vs both; the "7"s are equal keys
    assert stats == {"vote_equivalence": "math", "vote_comparisons": 5, "vote_undecided": 0}
    samples = [{"label": a in ("1/2", "\\frac{1}{2}", "0.5"), "extracted": a} for a in answers]
    assert problem_summary(samples)["majority_correct"] is False
    assert problem_summary(samples, clusters[0])["majority_correct"] is True
    numeric, _ = vote_clusters([["18", "18.00", "$18", "17"]], "gsm8k", workers=0)
    assert numeric == [[0, 0, 0, 1]]
    custom, stats = vote_clusters([["a", "A"]], "mymodule:check", workers=0)
    assert custom == [[0, 1]] and stats["vote_equivalence"] == "string"


def test_vote_comparisons_are_one_per_representative_and_batched_per_round():
    from negtune.evaluation.metrics import answer_clusters

    calls = []

    def same(pairs):
        calls.append(pairs)
        return [int(a) % 3 == int(b) % 3 for a, b in pairs]  # equal modulo 3

    clusters = answer_clusters([["1", "2", "4", "5", "3"], ["6", "9"]], same)
    assert clusters == [[0, 1, 0, 1, 2], [0, 0]]
    # round 1: "2" vs "1" and "9" vs "6" in one call; round 2: "4" vs both clusters; round 3 ...
    assert calls[0] == [("2", "1"), ("9", "6")]
    assert calls[1] == [("4", "1"), ("4", "2")] and sum(map(len, calls)) == 1 + 1 + 2 + 2 + 2


def test_a_comparison_that_times_out_splits_the_vote(monkeypatch):
    from negtune.evaluation import equivalence

    monkeypatch.setitem(equivalence.COMPARATORS, "slow", f"{__name__}:_slow")
    clusters, stats = equivalence.vote_clusters([["1", "1.0"]], "slow", workers=0, timeout=0.2)
    assert clusters == [[0, 1]] and stats["vote_undecided"] == 1  # the pool's timer stopped _slow


def _slow(candidate, representative):
    import time

    time.sleep(5)
    return True


def test_benchmark_metrics_by_hand():
    def sample(label, extracted, reward=1.0, finish="stop"):
        return {"label": label, "extracted": extracted, "reward": reward, "finish_reason": finish}

    problems = [
        problem_summary([sample(True, "4"), sample(False, "5"), sample(False, "5"), sample(True, "4")]),  # tie
        problem_summary([sample(False, "1"), sample(False, "2", None), sample(False, None, 0.0, "length"),
                         sample(True, "3")]),
    ]
    m = benchmark_metrics(problems)
    assert m["avg@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["maj@4"] == pytest.approx(0.5)  # problem 1: "4" wins the tie; problem 2: "1" (first of a 3-way tie)
    assert m["pass@k"]["1"] == pytest.approx(m["avg@4"])
    assert m["pass@k"]["4"] == 1.0
    assert m["pass@k"]["2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    assert (m["undecidable"], m["truncated"], m["samples"]) == (1, 1, 8)
    with pytest.raises(ValueError, match="different sample counts"):
        benchmark_metrics([problems[0], problem_summary([sample(True, "1")])])


def test_truth_ratio_by_hand():
    # P_para = e^-1; perturbed NLLs 2 and 4 -> geometric-mean probability e^-3; TR = e^-3 / e^-1 = e^-2
    tr = truth_ratio([1.0, 2.0], [[2.0, 4.0], [1.0, 1.0, 1.0]])
    assert tr == pytest.approx([math.exp(-2), math.exp(1)])
    assert truth_ratio_score(tr, "forget") == pytest.approx((math.exp(-2) + math.exp(-1)) / 2)  # min(TR, 1/TR)
    assert truth_ratio_score(tr, "retain") == pytest.approx((1 - math.exp(-2) + 0.0) / 2)  # max(0, 1 - TR)
    with pytest.raises(ValueError):
        truth_ratio([1.0], [[1.0], [2.0]])


def test_normalized_probability_by_hand():
    p = normalized_probability([0.0], [[math.log(2), math.log(4)]])  # 1 / (1 + 1/2 + 1/4)
    assert p == pytest.approx([1 / 1.75])


def test_forget_quality_of_a_model_against_itself_is_one():
    rng = np.random.default_rng(0)
    tr = rng.lognormal(size=200)
    assert forget_quality(tr, tr) == 1.0
    assert forget_quality(tr, tr * 50) < 1e-10  # a clearly different distribution


def test_model_utility_is_the_harmonic_mean_of_nine():
    metrics = dict.fromkeys(UTILITY_KEYS, 0.5)
    assert model_utility(metrics) == pytest.approx(0.5)
    metrics["world_facts_rouge"] = 0.25
    assert model_utility(metrics) == pytest.approx(9 / (8 / 0.5 + 1 / 0.25))
    metrics["retain_prob"] = 0.0
    assert model_utility(metrics) == 0.0
    del metrics["retain_rouge"]
    with pytest.raises(KeyError, match="retain_rouge"):
        model_utility(metrics)


def test_rouge_l_recall_uses_the_stemmer():
    scores = rouge_l_recall(["she was running home", "nothing alike", ""], ["she runs home", "the gold answer", "x"])
    assert scores[0] == pytest.approx(1.0)  # running ~ runs under the Porter stemmer
    assert scores[1] == 0.0 and scores[2] == 0.0
