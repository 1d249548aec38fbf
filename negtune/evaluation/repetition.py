"""Repetition metrics of Welleck et al. 2019 ("Neural Text Generation with Unlikelihood Training", §6), on
token ids of model continuations."""

from __future__ import annotations

from collections.abc import Sequence


def seq_rep_n(tokens: Sequence[int], n: int = 4) -> float:
    """seq-rep-n of one continuation: the fraction of its n-grams that are repeats,
    ``1 - |unique n-grams| / |n-grams|`` (0: no n-gram occurs twice; near 1: a loop). A continuation shorter
    than n has no n-grams and scores 0."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def rep_l(tokens: Sequence[int], window: int = 128) -> float:
    """rep/l of one continuation: the fraction of its tokens that already occurred in the previous ``window``
    tokens (Welleck et al.'s next-token repetition, here over generated text)."""
    if not tokens:
        return 0.0
    return sum(tokens[t] in tokens[max(0, t - window):t] for t in range(len(tokens))) / len(tokens)


def repetition_metrics(continuations: Sequence[Sequence[int]], n: int = 4) -> dict[str, float]:
    """Means over continuations of seq-rep-n and rep/128, and uniq: distinct tokens over all continuations."""
    if not continuations:
        raise ValueError("repetition_metrics: no continuations")
    k = len(continuations)
    return {f"seq_rep_{n}": sum(seq_rep_n(c, n) for c in continuations) / k,
            "rep_128": sum(rep_l(c) for c in continuations) / k,
            "uniq": float(len({t for c in continuations for t in c}))}


def diversity(tokens: Sequence[int]) -> float:
    """(1 - seq-rep-2)(1 - seq-rep-3)(1 - seq-rep-4) of one continuation: the diversity score by which Click
    (Zheng et al. 2023, ``eval_div.py``) labels continuations repetitive (negative) below a threshold taken from
    human text."""
    out = 1.0
    for n in (2, 3, 4):
        out *= 1.0 - seq_rep_n(tokens, n)
    return out
