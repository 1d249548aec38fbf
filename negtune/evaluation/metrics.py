"""Math benchmark metrics over n samples per problem: avg@n, maj@n and the unbiased pass@k.

Pure functions on per-problem sample lists, so they can be checked by hand and reused by any runner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    """The key answers are grouped by for majority voting: whitespace and enclosing ``$`` removed.

    Extracted answers come from math-verify's parse (already canonical sympy/str forms), so light
    normalisation suffices; two spellings it did not unify count as different answers.
    """
    if extracted is None:
        return None
    key = re.sub(r"\s+", "", str(extracted)).strip("$")
    return key or None


def majority_vote(extracted: Sequence[str | None]) -> int | None:
    """Index of the sample that represents the majority answer, or None when no sample has an answer.

    Ties are broken deterministically: among the most frequent answers, the one that appears first
    (lowest sample index) wins; the returned index is that first appearance.
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(extracted):
        key = normalize_answer(answer)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[best]


def problem_summary(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-problem numbers from its samples (``label``, ``extracted``, ``reward``, ``finish_reason``)."""
    correct = [bool(s["label"]) for s in samples]
    maj = majority_vote([s.get("extracted") for s in samples])
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
