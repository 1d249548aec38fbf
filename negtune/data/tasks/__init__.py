"""Embedded synthetic tasks: verifiable arithmetic word problems and a TOFU-format fictitious-facts set."""

from negtune.data.tasks.arith import check_arith, make_arith
from negtune.data.tasks.facts import make_facts, write_tofu_synthetic

__all__ = ["check_arith", "make_arith", "make_facts", "write_tofu_synthetic"]
