import re

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
