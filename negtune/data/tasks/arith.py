"""Multi-step arithmetic word problems with chain-of-thought solutions and ``\\boxed{}`` answers.

Deterministic by seed. ``difficulty`` sets the largest number of steps (1..difficulty+1 per problem) and
the operand range, so one knob moves a tiny model between "mostly wrong" and "mostly right".
"""

from __future__ import annotations

import random

from negtune.utils.answers import last_boxed

NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia",
         "Omar", "Pia", "Rex", "Sam", "Tia", "Uma"]
ITEMS = ["apples", "coins", "books", "marbles", "stamps", "shells", "cards", "pens", "eggs", "beads"]


def _step(rng: random.Random, name: str, value: int, max_operand: int) -> tuple[str, str, int]:
    """One operation on ``value``: (sentence, chain-of-thought line, new value)."""
    kind = rng.choice(["add", "sub", "mul"] if value <= max_operand else ["add", "sub"])
    if kind == "sub" and value == 0:
        kind = "add"
    if kind == "add":
        b = rng.randint(1, max_operand)
        verb = rng.choice(["buys", "finds", "gets"])
        return f"Then {name} {verb} {b} more.", f"{value} + {b} = {value + b}.", value + b
    if kind == "sub":
        b = rng.randint(1, value)
        verb = rng.choice(["gives away", "loses", "sells"])
        return f"Then {name} {verb} {b}.", f"{value} - {b} = {value - b}.", value - b
    k = rng.choice([2, 3])
    word = {2: "doubles", 3: "triples"}[k]
    return f"Then the number of them {word}.", f"{value} * {k} = {value * k}.", value * k


def make_arith(n: int, seed: int = 0, difficulty: int = 2) -> list[dict]:
    """``n`` problems as normalized records plus a ``solution`` (chain of thought ending in ``\\boxed{}``)."""
    if difficulty < 1:
        raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    rng = random.Random(f"arith-{seed}-{difficulty}")
    max_operand = 5 * difficulty + 4
    records = []
    for i in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        value = rng.randint(1, max_operand)
        sentences = [f"{name} has {value} {item}."]
        lines = [f"{name} starts with {value}."]
        for _ in range(rng.randint(1, difficulty + 1)):
            sentence, line, value = _step(rng, name, value, max_operand)
            sentences.append(sentence)
            lines.append(line)
        sentences.append(f"How many {item} does {name} have now?")
        lines.append(f"The answer is \\boxed{{{value}}}.")
        records.append({
            "id": f"arith-{seed}-{difficulty}-{i}",
            "prompt": " ".join(sentences),
            "answer": str(value),
            "solution": " ".join(lines),
            "source": "negtune/arith",
        })
    return records


def check_arith(completion: str, answer: str) -> bool:
    """Exact integer match of the last ``\\boxed{}``; the full verifiers live in ``negtune.rollout``."""
    got = last_boxed(completion)
    return got is not None and got.strip() == answer.strip()
