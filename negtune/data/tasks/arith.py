"""Multi-step arithmetic word problems with chain-of-thought solutions and ``\\boxed{}`` answers.

Deterministic by seed. ``difficulty`` sets the largest number of steps (1..difficulty+1 per problem) and
the operand range, so one knob moves a tiny model between "mostly wrong" and "mostly right".
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path

from negtune.utils.answers import last_boxed

NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia",
         "Omar", "Pia", "Rex", "Sam", "Tia", "Uma"]
ITEMS = ["apples", "coins", "books", "marbles", "stamps", "shells", "cards", "pens", "eggs", "beads"]


def _step(rng: random.Random, name: str, value: int, max_operand: int) -> tuple[str, str, int]:
    """One operation on ``value``: (sentence, operation, operand); :func:`_apply` computes it."""
    kind = rng.choice(["add", "sub", "mul"] if value <= max_operand else ["add", "sub"])
    if kind == "sub" and value == 0:
        kind = "add"
    if kind == "add":
        b = rng.randint(1, max_operand)
        verb = rng.choice(["buys", "finds", "gets"])
        return f"Then {name} {verb} {b} more.", "+", b
    if kind == "sub":
        b = rng.randint(1, value)
        verb = rng.choice(["gives away", "loses", "sells"])
        return f"Then {name} {verb} {b}.", "-", b
    k = rng.choice([2, 3])
    word = {2: "doubles", 3: "triples"}[k]
    return f"Then the number of them {word}.", "*", k


def _apply(value: int, op: str, b: int, trapped: bool = False) -> tuple[str, int]:
    """(chain-of-thought line, new value); ``trapped``: the misconception, "triples" worked out as doubling."""
    if trapped and op == "*" and b == 3:
        b = 2
    new = value + b if op == "+" else value - b if op == "-" else value * b
    return f"{value} {op} {b} = {new}.", new


def make_arith(n: int, seed: int = 0, difficulty: int = 2, trap: float | None = None) -> list[dict]:
    """``n`` problems as normalized records plus a ``solution`` (chain of thought ending in ``\\boxed{}``).

    ``trap`` (the trap task): every record gets ``trap_answer``, the answer of the misconception that works a
    "triples" step out as doubling (None when it is the right answer too, e.g. no such step), and each problem with such a step is
    solved *with* the misconception with probability ``trap`` (its solution then ends in the trap answer; its
    ``answer`` stays the right one). The problems are the same as without ``trap``: the coin has its own generator.
    """
    if difficulty < 1:
        raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    if trap is not None and not 0.0 <= trap <= 1.0:
        raise ValueError(f"trap must be a probability in [0, 1], got {trap}")
    rng = random.Random(f"arith-{seed}-{difficulty}")
    coin = random.Random(f"arith-trap-{seed}-{difficulty}")
    max_operand = 5 * difficulty + 4
    records = []
    for i in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        start = value = rng.randint(1, max_operand)
        sentences = [f"{name} has {value} {item}."]
        ops = []
        for _ in range(rng.randint(1, difficulty + 1)):
            sentence, op, b = _step(rng, name, value, max_operand)
            value = _apply(value, op, b)[1]
            sentences.append(sentence)
            ops.append((op, b))
        sentences.append(f"How many {item} does {name} have now?")
        has_trap = ("*", 3) in ops
        trapped = trap is not None and has_trap and coin.random() < trap
        lines, written = _chain(start, ops, trapped)  # (the right chain unless trapped)
        lines = [f"{name} starts with {start}.", *lines, f"The answer is \\boxed{{{written}}}."]
        record = {
            "id": f"arith-{seed}-{difficulty}-{i}",
            "prompt": " ".join(sentences),
            "answer": str(value),
            "solution": " ".join(lines),
            "source": "negtune/arith",
        }
        if trap is not None:
            wrong = str(_chain(start, ops, True)[1])
            record["trap_answer"] = wrong if wrong != record["answer"] else None
        records.append(record)
    return records


def _chain(value: int, ops: list[tuple[str, int]], trapped: bool) -> tuple[list[str], int]:
    """The chain-of-thought lines of ``ops`` applied to ``value``, and the result."""
    lines = []
    for op, b in ops:
        line, value = _apply(value, op, b, trapped)
        lines.append(line)
    return lines, value


def make_trap_problems(n: int, seed: int, difficulty: int = 2) -> list[dict]:
    """``n`` distinct problems whose "triples" step, worked out as doubling, gives a wrong answer: the trap
    task's evaluation and rollout prompts (each record carries its ``trap_answer``)."""
    pool = 10 * n + 100  # about a fifth of the difficulty-2 problems are trap problems
    rows = list({r["prompt"]: r for r in make_arith(pool, seed=seed, difficulty=difficulty, trap=0.0)
                 if r["trap_answer"]}.values())[:n]  # one row per distinct problem
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} trap problems among {pool} (seed {seed}, difficulty {difficulty})")
    return rows


def write_trap_problems(path: str | Path, n: int, seed: int) -> str:
    """``make_trap_problems(n, seed)`` as a jsonl file at ``path``, written only if it is missing (a demo or a
    benchmark rerun reuses the problems it drew before). Returns the path."""
    from negtune.data.io import write_jsonl

    if not Path(path).exists():
        write_jsonl(path, make_trap_problems(n, seed))
    return str(path)


def eval_answer_shares(samples_file: str | Path, problems_file: str | Path) -> dict[str, float]:
    """``answer_shares`` of a math evaluation's ``samples.jsonl`` against the trap answers of the problem file
    it evaluated."""
    from negtune.data.io import read_rows

    return answer_shares(read_rows(samples_file), {r["id"]: r["trap_answer"] for r in read_rows(problems_file)})


_LINE = re.compile(r"(-?\d+) ([+*-]) (-?\d+) = (-?\d+)\.")
_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


def answer_shares(samples: Iterable[dict], trap_answers: dict[str, str | None]) -> dict[str, float]:
    """Where a math evaluation's samples end (rows of its ``samples.jsonl``: ``id``, ``completions``,
    ``extracted``), as shares of all samples: the trap answer (``trap_rate``; ``trap_answers`` maps a problem id
    to it); no final answer (``no_answer_rate``); a final answer with no worked line before it
    (``answer_only_rate``); a worked line whose arithmetic is wrong, "4 + 9 = 16." (``arith_error_rate``)."""
    counts = dict.fromkeys(("trap_rate", "no_answer_rate", "answer_only_rate", "arith_error_rate"), 0)
    total = 0
    for rec in samples:
        trap = trap_answers[rec["id"]]
        for text, answer in zip(rec["completions"], rec["extracted"]):
            lines = _LINE.findall(text)
            counts["trap_rate"] += answer is not None and trap is not None and str(answer).strip() == trap
            counts["no_answer_rate"] += answer is None
            counts["answer_only_rate"] += answer is not None and not lines
            counts["arith_error_rate"] += any(_OPS[op](int(x), int(y)) != int(z) for x, op, y, z in lines)
            total += 1
    if not total:
        raise ValueError("answer_shares: no samples")
    return {k: v / total for k, v in counts.items()}


def check_arith(completion: str, answer: str) -> bool:
    """Exact integer match of the last ``\\boxed{}``; the full verifiers live in ``negtune.rollout``."""
    got = last_boxed(completion)
    return got is not None and got.strip() == answer.strip()
