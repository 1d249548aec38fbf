"""Where the reference benchmark data lives.

Tests, evals and benchmarks read real benchmark files from a shared folder (never copied into the repo):
``$NEGTUNE_DATA_DIR`` if set, else ``../shared/data`` next to the project checkout. When neither exists,
callers fall back to the hub ids listed in :data:`BENCHMARKS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    env = os.environ.get("NEGTUNE_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates += [_PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


@dataclass(frozen=True)
class Benchmark:
    name: str
    relpath: str  # under shared_data_dir()
    format: str
    hub_id: str
    hub_config: str | None = None
    hub_split: str = "test"


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("gsm8k", "math/gsm8k/test.jsonl", "gsm8k", "openai/gsm8k", "main"),
        Benchmark("gsm8k_train", "math/gsm8k/train.jsonl", "gsm8k", "openai/gsm8k", "main", "train"),
        Benchmark("math_train", "math/math/train.parquet", "verl", "DigitalLearningGmbH/MATH-lighteval", None, "train"),
        Benchmark("math500", "math/math500/test.jsonl", "math", "HuggingFaceH4/MATH-500"),
        Benchmark("aime24", "math/aime24/test.jsonl", "math", "HuggingFaceH4/aime_2024", None, "train"),
        Benchmark("aime25", "math/aime25/test.parquet", "verl", "yentinglin/aime_2025", None, "train"),
        Benchmark("amc23", "math/amc23/test.jsonl", "math", "math-ai/amc23"),
        Benchmark("minerva", "math/minerva_math/test.jsonl", "minerva", "math-ai/minervamath"),
        Benchmark("olympiadbench", "math/olympiadbench/test.jsonl", "olympiadbench", "Hothan/OlympiadBench"),
    ]
}


def benchmark_source(name: str) -> tuple[str, Benchmark]:
    """The local file for a named benchmark when the shared folder has it, else its hub id."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    bench = BENCHMARKS[name]
    root = shared_data_dir()
    if root is not None and (root / bench.relpath).exists():
        return str(root / bench.relpath), bench
    return bench.hub_id, bench


def tofu_dir() -> Path | None:
    root = shared_data_dir()
    if root is not None and (root / "tofu").is_dir():
        return root / "tofu"
    return None
