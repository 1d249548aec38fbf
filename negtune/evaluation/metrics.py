"""Math benchmark metrics over n samples per problem: avg@n, maj@n and the unbiased pass@k.

Pure functions on per-problem sample lists, so they can be checked by hand and reused by any runner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from math import comb
from typing import Any


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): the chance that k of the n samples, drawn without replacement,
    contain at least one of the c correct ones.

        pass@k = 1 - C(n - c, k) / C(n, k)

    Exact integer arithmetic (``math.comb``), so large n loses no precision.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def normalize_answer(extracted: str | None) -> str | None:
    """The string key of an answer: whitespace and enclosing ``$`` removed. Equal keys are one vote without
    asking math-verify (``x + 1`` and ``x+1``); different keys are compared by :func:`answer_clusters`."""
    if extracted is None:
        return None
    key = re.sub(r"\s+", "", str(extracted)).strip("$")
    return key or None


SameBatch = Callable[[list[tuple[str, str]]], list[bool]]


def answer_clusters(problems: Sequence[Sequence[str | None]], same: SameBatch | None = None) -> list[list[int | None]]:
    """A cluster id per sample (None: no answer) for every problem, clusters numbered by first appearance.

    Answers with the same :func:`normalize_answer` key share a cluster outright. Every other distinct answer is
    compared with *one representative per existing cluster* (the answer that opened it) by
    ``same([(candidate, representative), ...]) -> [bool, ...]`` and joins the first cluster it equals, else opens
    a new one: at most d·c comparisons for d distinct answers and c clusters, not all n² pairs. The comparisons
    run in rounds (round r: every problem's r-th distinct answer against all its representatives) so that one
    call of ``same`` gets a whole round's pairs, which a pool of workers checks in parallel. ``same`` sees the
    answers as extracted (the key drops whitespace, which LaTeX such as ``x \\cdot y`` needs).
    ``same=None``: keys only.
    """
    keys = [[normalize_answer(a) for a in answers] for answers in problems]
    firsts: list[dict[str, str]] = []  # per problem: distinct key -> its first spelling, in order of appearance
    for ks, answers in zip(keys, problems):
        firsts.append({})
        for k, a in zip(ks, answers):
            if k is not None:
                firsts[-1].setdefault(k, str(a))
    order = [list(f) for f in firsts]
    cluster_of: list[dict[str, int]] = [{} for _ in problems]
    reps: list[list[str]] = [[] for _ in problems]  # each cluster's representative (its first answer)
    for r in range(max(map(len, order), default=0)):
        pending = [(p, firsts[p][o[r]]) for p, o in enumerate(order) if r < len(o)]
        pairs = [(answer, rep) for p, answer in pending for rep in reps[p]] if same is not None else []
        verdicts = iter(same(pairs) if pairs else [])
        for p, answer in pending:
            equal = [next(verdicts) for _ in reps[p]] if same is not None else []
            if True in equal:
                cluster_of[p][order[p][r]] = equal.index(True)
            else:
                cluster_of[p][order[p][r]] = len(reps[p])
                reps[p].append(answer)
    return [[None if k is None else cluster_of[p][k] for k in ks] for p, ks in enumerate(keys)]


def majority_vote(extracted: Sequence[str | None], clusters: Sequence[int | None] | None = None) -> int | None:
    """Index of the sample that represents the majority answer, or None when no sample has an answer.

    ``clusters``: which answers are the same answer (:func:`answer_clusters`; the math eval groups by
    math-verify equivalence, so ``1/2`` and ``\\frac{1}{2}`` are one vote); default: the string keys alone.
    Ties are broken deterministically: among the most frequent answers, the one that appears first
    (lowest sample index) wins; the returned index is that first appearance.
    """
    if clusters is None:
        clusters = answer_clusters([extracted])[0]
    if len(clusters) != len(extracted):
        raise ValueError(f"majority_vote: {len(extracted)} answers but {len(clusters)} cluster ids")
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, cluster in enumerate(clusters):
        if cluster is None:
            continue
        counts[cluster] = counts.get(cluster, 0) + 1
        first.setdefault(cluster, i)
    if not counts:
        return None
    best = max(counts, key=lambda c: (counts[c], -first[c]))
    return first[best]


def problem_summary(samples: Sequence[dict[str, Any]], clusters: Sequence[int | None] | None = None) -> dict[str, Any]:
    """Per-problem numbers from its samples (``label``, ``extracted``, ``reward``, ``finish_reason``);
    ``clusters``: the samples' answer clusters for the majority vote (see :func:`majority_vote`)."""
    correct = [bool(s["label"]) for s in samples]
    maj = majority_vote([s.get("extracted") for s in samples], clusters)
    return {
        "n": len(samples),
        "correct": sum(correct),
        "majority_index": maj,
        "majority_answer": samples[maj].get("extracted") if maj is not None else None,
        "majority_correct": bool(correct[maj]) if maj is not None else False,
        "undecidable": sum(s.get("reward") is None for s in samples),
        "truncated": sum(s.get("finish_reason") == "length" for s in samples),
    }


def benchmark_metrics(problems: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """avg@n, maj@n, pass@k (k = 1..n) and undecidable/truncated counts over problems (``problem_summary``s).

    Every problem must have the same n (a run samples the same number per problem).
    """
    if not problems:
        raise ValueError("benchmark_metrics: no problems")
    ns = {p["n"] for p in problems}
    if len(ns) != 1:
        raise ValueError(f"benchmark_metrics: problems have different sample counts {sorted(ns)}")
    n = ns.pop()
    count = len(problems)
    return {
        "problems": count,
        "n": n,
        f"avg@{n}": sum(p["correct"] / n for p in problems) / count,
        f"maj@{n}": sum(p["majority_correct"] for p in problems) / count,
        "pass@k": {str(k): sum(pass_at_k(n, p["correct"], k) for p in problems) / count for k in range(1, n + 1)},
        "samples": n * count,
        "undecidable": sum(p["undecidable"] for p in problems),
        "truncated": sum(p["truncated"] for p in problems),
    }
