"""Verifiers: ``(completion, answer) -> Verdict``. Load one by name with :func:`load`.

``reward`` is None when the verifier cannot decide (the gold does not parse, time ran out, it crashed);
such samples are labeled negative for training but counted separately in the rollout stats.
Verifiers are plain, picklable, module-level callables so they run in worker processes
(:mod:`negtune.rollout.verify_pool` adds the time limits).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from negtune.utils.answers import last_boxed


class _DropDisabledTimeoutNotice(logging.Filter):
    # We disable math-verify's signal-based timeouts on purpose (the pool enforces limits); its notice
    # about that would otherwise print once per sample.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropDisabledTimeoutNotice())


@dataclass(frozen=True)
class Verdict:
    reward: float | None
    label: bool
    extracted: str | None

    @classmethod
    def undecided(cls, extracted: str | None = None) -> Verdict:
        return cls(None, False, extracted)

    @classmethod
    def of(cls, correct: bool, extracted: str | None) -> Verdict:
        return cls(1.0 if correct else 0.0, bool(correct), extracted)


Verifier = Callable[[str, str], Verdict]


def verify_math(completion: str, answer: str) -> Verdict:
    """math-verify: the gold is wrapped in ``\\boxed{}`` and goes first in ``verify`` (it is asymmetric).

    math-verify's own timeouts use ``signal.alarm`` (main thread only) and are disabled here: the verifier
    pool enforces the time limit for every verifier alike.
    """
    from math_verify import parse, verify

    gold_text = answer if "\\boxed" in answer else f"\\boxed{{{answer}}}"
    gold = parse(gold_text, parsing_timeout=None)
    if not gold:
        return Verdict.undecided()
    if not completion.strip():
        return Verdict.of(False, None)
    pred = parse(completion, parsing_timeout=None)
    if not pred:
        return Verdict.of(False, None)
    extracted = str(pred[-1]) if len(pred) > 1 else str(pred[0])
    return Verdict.of(bool(verify(gold, pred, timeout_seconds=None)), extracted)


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _to_float(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").replace("\\!", "").strip().rstrip(".")
    if cleaned.endswith("%"):
        cleaned = cleaned[:-1]
    try:
        return float(cleaned)
    except ValueError:
        frac = re.fullmatch(r"\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", cleaned)
        if frac and float(frac.group(2)) != 0:
            return float(frac.group(1)) / float(frac.group(2))
        return None


def verify_numeric(completion: str, answer: str, rel_tol: float = 1e-6) -> Verdict:
    """GSM8K-style: the last ``\\boxed{}`` if any, else the last number in the text, compared as a float."""
    gold = _to_float(answer)
    if gold is None:
        return Verdict.undecided()
    boxed = last_boxed(completion)
    if boxed is not None:
        extracted = boxed.strip()
    else:
        numbers = _NUMBER.findall(completion)
        if not numbers:
            return Verdict.of(False, None)
        extracted = numbers[-1]
    value = _to_float(extracted)
    if value is None:
        return Verdict.of(False, extracted)
    return Verdict.of(abs(value - gold) <= rel_tol * max(1.0, abs(gold)), extracted)


def _norm_text(text: str) -> str:
    return " ".join(text.strip().strip(".").casefold().split())


def verify_exact(completion: str, answer: str) -> Verdict:
    """Exact match (case and whitespace folded) of the last ``\\boxed{}`` or, without one, the whole text."""
    boxed = last_boxed(completion)
    extracted = (boxed if boxed is not None else completion).strip()
    if not extracted:
        return Verdict.of(False, None)
    return Verdict.of(_norm_text(extracted) == _norm_text(answer), extracted)


_CHOICE_PATTERNS = [
    re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}"),
    re.compile(r"answer\s*(?:is|:)?\s*:?\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"(?<![A-Za-z])([A-J])(?![A-Za-z])"),
]


def verify_choice(completion: str, answer: str) -> Verdict:
    """Multiple choice: a letter A-J, from ``\\boxed{B}``, "answer is (B)", "(B)", or a lone capital letter."""
    gold = answer.strip().strip("()").upper()
    if not re.fullmatch(r"[A-J]", gold):
        return Verdict.undecided()
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(completion)
        if found:
            letter = found[-1].upper()
            return Verdict.of(letter == gold, letter)
    return Verdict.of(False, None)


BUILTIN: dict[str, Verifier] = {
    "math": verify_math,
    "gsm8k": verify_numeric,
    "numeric": verify_numeric,
    "exact": verify_exact,
    "choice": verify_choice,
}


def _wrap_user(fn: Callable, completion: str, answer: str) -> Verdict:
    result = fn(completion, answer)
    if isinstance(result, Verdict):
        return result
    if result is None:
        return Verdict.undecided()
    if isinstance(result, tuple):  # (reward, extracted)
        reward, extracted = result
        return Verdict(None if reward is None else float(reward), bool(reward and reward > 0), extracted)
    return Verdict(float(result), float(result) > 0, None)


def load(name: str) -> Verifier:
    """A verifier by name (``math``, ``gsm8k``/``numeric``, ``exact``, ``choice``) or ``module:function``.

    A user function takes ``(completion, answer)`` and returns a Verdict, a bool/float reward (> 0 means
    positive), ``(reward, extracted)``, or None (undecidable).

    Security: the verifier returned here has **no time limit**: a hostile or pathological completion can make
    the ``math`` verifier (sympy parsing) run for a very long time. Only ``negtune.rollout.verify_pool`` (the
    rollout, eval and trainers' reward path) bounds each sample (``--verify-timeout``); call it through the
    pool, or bound it yourself, when completions are untrusted. ``module:function`` imports the module and
    calls any callable it names (``os:system`` would load): a verifier name is code, so take it only from
    a trusted command line or recipe.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"--verifier {name!r}: cannot import module {module_name!r} ({e})") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"--verifier {name!r}: {module_name} has no function {attr!r}")
        return partial(_wrap_user, fn)
    raise ValueError(f"unknown verifier {name!r}; known: {', '.join(BUILTIN)}, or module:function")
