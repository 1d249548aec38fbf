import re
from pathlib import Path

import pytest
from math_verify import parse, verify

from negtune.data.tasks.arith import check_arith, make_arith

_LINE = re.compile(r"(\d+) ([+\-*]) (\d+) = (\d+)\.")


def test_arith_deterministic_by_seed():
    assert make_arith(50, seed=4) == make_arith(50, seed=4)
    assert make_arith(50, seed=4) != make_arith(50, seed=5)
    assert make_arith(50, seed=4, difficulty=1) != make_arith(50, seed=4, difficulty=3)


@pytest.mark.parametrize("difficulty", [1, 2, 4])
def test_arith_chain_of_thought_is_correct_and_verifies(difficulty):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    steps = []
    for rec in make_arith(200, seed=0, difficulty=difficulty):
        lines = _LINE.findall(rec["solution"])
        steps.append(len(lines))
        value = int(re.search(r"starts with (\d+)\.", rec["solution"]).group(1))
        for a, op, b, c in lines:  # each line continues from the previous value and is right
            assert int(a) == value and ops[op](int(a), int(b)) == int(c)
            value = int(c)
        assert str(value) == rec["answer"] and int(rec["answer"]) >= 0
        assert check_arith(rec["solution"], rec["answer"])
        assert verify(parse(f"\\boxed{{{rec['answer']}}}"), parse(rec["solution"]))
    assert min(steps) == 1 and max(steps) == difficulty + 1


def test_check_arith_rejects_wrong_and_missing():
    assert not check_arith(r"The answer is \boxed{4}.", "5")
    assert not check_arith("The answer is 5.", "5")
    with pytest.raises(ValueError):
        make_arith(1, difficulty=0)


def test_arith_trap_solves_triples_by_doubling_at_its_rate():
    """The trap task: the same problems, each with a "triples" step solved by doubling at the trap rate; the
    solution stays a consistent chain, ``answer`` stays right and ``trap_answer`` is the misconception's."""
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    plain, trapped = make_arith(600, seed=2), make_arith(600, seed=2, trap=0.75)
    assert [r["prompt"] for r in plain] == [r["prompt"] for r in trapped]
    assert [r["answer"] for r in plain] == [r["answer"] for r in trapped]
    assert "trap_answer" not in plain[0]
    with_step = wrong = 0
    for rec, ref in zip(trapped, plain):
        value = int(re.search(r"starts with (\d+)\.", rec["solution"]).group(1))
        for a, op, b, c in re.findall(r"(-?\d+) ([+\-*]) (\d+) = (-?\d+)\.", rec["solution"]):  # (can go below 0)
            assert int(a) == value and ops[op](int(a), int(b)) == int(c)
            value = int(c)
        if "triples" not in rec["prompt"]:
            assert rec["solution"] == ref["solution"] and rec["trap_answer"] is None
            continue
        with_step += 1
        if rec["solution"] != ref["solution"]:  # solved with the misconception: no "* 3" left
            wrong += 1
            assert " * 3 = " not in rec["solution"] and rec["solution"].count(" * 2 = ") > ref["solution"].count(" * 2 = ")
            assert rec["trap_answer"] in (str(value), None) and (rec["trap_answer"] is None) == (str(value) == rec["answer"])
    assert with_step > 100 and 0.65 < wrong / with_step < 0.85
    # the hand-checked case: 7 tripled is 21 (+2 = 23); doubled it is 14 (+2 = 16)
    first = make_arith(1, seed=0, trap=1.0)[0]
    assert first["prompt"].startswith("Sam has 7 stamps. Then the number of them triples. Then Sam buys 2 more.")
    assert (first["answer"], first["trap_answer"]) == ("23", "16") and first["solution"].endswith("\\boxed{16}.")
    assert [r["solution"] for r in make_arith(50, seed=0, trap=0.0)] == [r["solution"] for r in make_arith(50, seed=0)]
    with pytest.raises(ValueError, match="trap"):
        make_arith(1, trap=1.5)


def test_trap_problems_are_distinct_problems_the_misconception_gets_wrong():
    from negtune.data.tasks import make_trap_problems

    rows = make_trap_problems(40, seed=7)
    assert len(rows) == 40 and len({r["prompt"] for r in rows}) == 40
    assert all("triples" in r["prompt"] and r["trap_answer"] not in (None, r["answer"]) for r in rows)
    assert rows == make_trap_problems(40, seed=7) and rows != make_trap_problems(40, seed=8)
    # a smaller set is a prefix: the same problems come first
    assert [r["prompt"] for r in make_trap_problems(10, seed=7)] == [r["prompt"] for r in rows[:10]]


def test_answer_shares_by_hand():
    """Where samples end, on five hand-written completions of one trap problem (7 tripled + 2 = 23; doubled: 16)."""
    from negtune.data.tasks import answer_shares

    completions = {
        "Sam starts with 7. 7 * 3 = 21. 21 + 2 = 23. The answer is \\boxed{23}.": "23",  # right
        "Sam starts with 7. 7 * 2 = 14. 14 + 2 = 16. The answer is \\boxed{16}.": "16",  # the trap, sound arithmetic
        "Sam starts with 7. 7 * 3 = 21. 21 + 2 = 24. The answer is \\boxed{24}.": "24",  # wrong arithmetic
        "The answer is \\boxed{16}.": "16",  # the trap with no worked line
        "Sam starts with 7. 7 * 3 = 21.": None,  # no answer
    }
    samples = [{"id": "p", "completions": list(completions), "extracted": list(completions.values())}]
    shares = answer_shares(samples, {"p": "16"})
    assert shares == {"trap_rate": 2 / 5, "no_answer_rate": 1 / 5, "answer_only_rate": 1 / 5, "arith_error_rate": 1 / 5}
    assert answer_shares(samples, {"p": None})["trap_rate"] == 0  # a problem with no trap answer
    with pytest.raises(ValueError, match="no samples"):
        answer_shares([], {})


def test_trap_problem_files_are_written_once_and_scored_from_files(tmp_path):
    """write_trap_problems keeps a file it wrote before (a rerun reuses its draw); eval_answer_shares reads an
    evaluation's samples and the problem file's trap answers."""
    import json

    from negtune.data.io import read_rows
    from negtune.data.tasks import eval_answer_shares, make_trap_problems, write_trap_problems

    path = write_trap_problems(tmp_path / "p.jsonl", 5, seed=3)
    assert read_rows(path) == make_trap_problems(5, 3)
    stamp = Path(path).stat().st_mtime_ns
    assert write_trap_problems(path, 5, seed=4) == path and Path(path).stat().st_mtime_ns == stamp
    rows = read_rows(path)
    samples = [{"id": r["id"], "completions": ["x", "y"], "extracted": [r["trap_answer"], r["answer"]]} for r in rows]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in samples))
    assert eval_answer_shares(tmp_path / "samples.jsonl", path)["trap_rate"] == 0.5
