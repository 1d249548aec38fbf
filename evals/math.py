"""Math benchmark evaluation: ``python evals/math.py --model M --benchmarks gsm8k,math500 --out DIR``.

The same as ``negtune eval math`` (the logic lives in :mod:`negtune.evaluation.math`).
"""

import os
import sys

# This folder must not shadow the standard library (this file is named like the stdlib ``math`` module).
_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _here]

from negtune.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", "math", *sys.argv[1:]]))
