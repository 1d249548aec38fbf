"""Which sampled answers are one vote for maj@n: the run's verifier decides, with one answer as the gold.

- ``math`` (the default): math-verify, ``verify(parse(representative), parse(candidate))`` (the representative
  plays the gold, first, as the verifier puts it), so ``1/2``, ``0.5`` and ``\\frac{1}{2}`` are one answer.
  Parses are cached per worker process: an answer is compared with several representatives.
- ``numeric``/``gsm8k``, ``exact``, ``choice``: that verifier on ``\\boxed{candidate}`` against the
  representative (``18`` = ``18.00`` = ``$18``; case-folded text; the same letter).
- a custom ``module:function`` verifier: the string keys only (what it makes of an answer as the gold is unknown).

The comparisons go through :class:`negtune.rollout.verify_pool.VerifierPool` (worker processes, the run's
``--verify-timeout`` per comparison, a stuck worker killed); a comparison that times out or fails counts as
"different": votes can be split by it, never merged by accident, and it is counted (``vote_undecided``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from functools import lru_cache

from negtune.evaluation.metrics import answer_clusters
from negtune.rollout.verifiers import verify_choice, verify_exact, verify_numeric


@lru_cache(maxsize=16384)
def _parsed(answer: str) -> list:
    from math_verify import parse

    # math-verify's own signal timeouts are off: the pool's timer bounds every comparison
    return parse(answer if "\\boxed" in answer else f"\\boxed{{{answer}}}", parsing_timeout=None)


def same_math(candidate: str, representative: str) -> bool:
    from math_verify import verify

    gold, pred = _parsed(representative), _parsed(candidate)
    return bool(gold and pred and verify(gold, pred, timeout_seconds=None))


def same_numeric(candidate: str, representative: str) -> bool:
    return verify_numeric(f"\\boxed{{{candidate}}}", representative).label


def same_exact(candidate: str, representative: str) -> bool:
    return verify_exact(f"\\boxed{{{candidate}}}", representative).label


def same_choice(candidate: str, representative: str) -> bool:
    return verify_choice(f"\\boxed{{{candidate}}}", representative).label


# verifier -> the comparison the pool runs (a ``module:function`` name: its workers import it)
COMPARATORS = {"math": f"{__name__}:same_math", "gsm8k": f"{__name__}:same_numeric",
               "numeric": f"{__name__}:same_numeric", "exact": f"{__name__}:same_exact",
               "choice": f"{__name__}:same_choice"}


def vote_clusters(problems: Sequence[Sequence[str | None]], verifier: str, workers: int | None = None,
                  timeout: float = 5.0) -> tuple[list[list[int | None]], dict]:
    """:func:`~negtune.evaluation.metrics.answer_clusters` of every problem's extracted answers, compared as
    ``verifier`` compares them; the worker pool starts only if some problem has two different answers.

    Returns the clusters and ``{"vote_equivalence": how, "vote_comparisons": n, "vote_undecided": n}``.
    """
    comparator = COMPARATORS.get(verifier)
    stats = {"vote_equivalence": "string" if comparator is None else verifier, "vote_comparisons": 0,
             "vote_undecided": 0}
    if comparator is None:
        return answer_clusters(problems), stats
    from negtune.rollout.verify_pool import VerifierPool

    with ExitStack() as stack:
        pool = None

        def same(pairs: list[tuple[str, str]]) -> list[bool]:
            nonlocal pool
            if pool is None:
                pool = stack.enter_context(VerifierPool(comparator, workers, timeout))
            verdicts, vstats = pool.verify([c for c, _ in pairs], [r for _, r in pairs])
            stats["vote_comparisons"] += len(pairs)
            stats["vote_undecided"] += vstats.undecidable
            return [v.label for v in verdicts]

        return answer_clusters(problems, same), stats
