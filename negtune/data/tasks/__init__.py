"""Embedded synthetic tasks: verifiable arithmetic word problems and a TOFU-format fictitious-facts set."""

from negtune.data.tasks.arith import (
    answer_shares,
    check_arith,
    eval_answer_shares,
    make_arith,
    make_trap_problems,
    write_trap_problems,
)
from negtune.data.tasks.facts import make_facts, write_tofu_synthetic

__all__ = ["answer_shares", "check_arith", "eval_answer_shares", "make_arith", "make_trap_problems", "make_facts",
           "write_trap_problems", "write_tofu_synthetic"]
