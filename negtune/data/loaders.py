"""Turn what users have (benchmark files, verl parquet, plain tables, hub ids) into normalized records.

A normalized record is ``{"id": str, "prompt": str | chat list, "answer": str, "source": str}``: the prompt
is the raw problem (templates are applied later, by the rollout engine), the answer is the gold string a
verifier compares against.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negtune.data.io import ROW_SUFFIXES, DataError, read_rows
from negtune.data.paths import BENCHMARKS, benchmark_source
from negtune.utils.answers import format_number, last_boxed, strip_math_delimiters

Record = dict[str, Any]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    required: tuple[tuple[str, ...], ...]  # each inner tuple: one of these columns must be present
    normalize: Callable[[dict, int], tuple[Any, str]]  # row, index -> (prompt, answer)


def _first(row: dict, *names: str) -> Any:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


class RowError(DataError):
    def __init__(self, column: str, message: str, *, empty_gold: bool = False):
        super().__init__(message)
        self.column = column
        self.empty_gold = empty_gold  # a row with no gold answer is skipped and reported, not fatal


@dataclass
class Loaded:
    """Normalized records plus what the loader decided: the format and the rows it skipped (and why)."""

    records: list[Record]
    format: str
    source: str
    skipped: list[tuple[int, str]]

    def __len__(self) -> int:
        return len(self.records)


def _gsm8k(row: dict, i: int) -> tuple[Any, str]:
    text = str(row["answer"])
    if "####" not in text:
        raise RowError("answer", "no '#### <answer>' marker in the GSM8K answer")
    return row["question"], text.rsplit("####", 1)[1].strip().replace(",", "")


def _math(row: dict, i: int) -> tuple[Any, str]:
    prompt = _first(row, "problem", "question")
    answer = row.get("answer")
    if answer is not None and answer != "":
        answer = format_number(answer) if isinstance(answer, (int, float)) else str(answer)
    else:
        answer = last_boxed(row.get("solution"))
        if not answer:
            raise RowError("solution", "no 'answer' value and no \\boxed{} in the solution", empty_gold=True)
    if prompt is None:
        raise RowError("problem", "empty problem")
    return prompt, answer.strip()


def _olympiadbench(row: dict, i: int) -> tuple[Any, str]:
    answers = row["final_answer"]
    if isinstance(answers, str):
        answers = [answers]
    if not answers:
        raise RowError("final_answer", "empty final_answer list")
    prompt = row["question"]
    if row.get("context"):
        prompt = f"{row['context']}\n\n{prompt}"
    return prompt, ", ".join(strip_math_delimiters(str(a)) for a in answers)


def _maybe_literal(value: Any, column: str) -> Any:
    """verl files store chats/dicts either as structs or as stringified JSON / Python literals."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)  # literals only: never evaluates code
    except (ValueError, SyntaxError):
        raise RowError(column, "not a chat list / dict (neither JSON nor a Python literal)") from None


def _verl(row: dict, i: int) -> tuple[Any, str]:
    prompt = _maybe_literal(row["prompt"], "prompt")
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    reward_model = _maybe_literal(row["reward_model"], "reward_model")
    truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    if isinstance(truth, dict):
        truth = _first(truth, "target", "answer")
    if truth is None or truth == "":
        raise RowError("reward_model", "empty reward_model.ground_truth", empty_gold=True)
    return prompt, format_number(truth) if isinstance(truth, (int, float)) else str(truth)


def _records(row: dict, i: int) -> tuple[Any, str]:
    answer = row["answer"]
    if answer is None or answer == "":
        raise RowError("answer", "empty answer", empty_gold=True)
    prompt = row["prompt"]
    if isinstance(prompt, str) and prompt.startswith("[{"):  # a chat list written as a string
        try:
            parsed = _maybe_literal(prompt, "prompt")
            prompt = parsed if isinstance(parsed, list) else prompt
        except RowError:
            pass  # plain text that happens to start with "[{"
    return prompt, format_number(answer) if isinstance(answer, (int, float)) else str(answer)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("records", "negtune records: prompt (text or chat list), answer (e.g. `negtune data make-arith`)",
               (("prompt",), ("answer",)), _records),
        Format("gsm8k", "GSM8K: question, answer ending in '#### <number>'", (("question",), ("answer",)), _gsm8k),
        Format(
            "math",
            "MATH / MATH-500 / AIME / AMC / Minerva: problem|question + answer, or the last \\boxed{} of solution",
            (("problem", "question"), ("answer", "solution")),
            _math,
        ),
        Format(
            "olympiadbench",
            "OlympiadBench: question (+context), final_answer list",
            (("question",), ("final_answer",)),
            _olympiadbench,
        ),
        Format(
            "verl",
            "verl parquet: chat 'prompt' + reward_model.ground_truth (structs or stringified)",
            (("prompt",), ("reward_model",)),
            _verl,
        ),
    ]
}
FORMAT_ALIASES = {"math500": "math", "aime": "math", "amc": "math", "minerva": "math"}
KNOWN_FORMATS = sorted([*FORMATS, *FORMAT_ALIASES, "columns"])


def detect_format(rows: list[dict], *, path: str = "") -> str:
    """Guess the format from the columns (and, for question/answer tables, GSM8K's '####' marker)."""
    cols = set(rows[0]) if rows else set()
    if {"prompt", "reward_model"} <= cols:
        return "verl"
    if {"prompt", "answer"} <= cols:
        return "records"
    if "final_answer" in cols and "question" in cols:
        return "olympiadbench"
    if {"problem", "solution"} <= cols or ({"problem", "answer"} <= cols):
        return "math"
    if {"question", "answer"} <= cols:
        return "gsm8k" if all("####" in str(r.get("answer", "")) for r in rows[:20]) else "math"
    raise DataError(
        f"{path}: cannot detect the format from columns {sorted(cols)}; pass --format (known: "
        f"{', '.join(KNOWN_FORMATS)}), or --format columns --prompt-column C --answer-column C"
    )


def normalize_rows(
    rows: list[dict],
    *,
    source: str,
    format: str | None = None,
    prompt_column: str | None = None,
    answer_column: str | None = None,
    id_column: str | None = None,
) -> Loaded:
    """Normalize raw rows. Errors name the source, column and row.

    Rows without a gold answer (some real files have a few) are skipped and listed in ``Loaded.skipped``;
    any other malformed row is an error.
    """
    if not rows:
        raise DataError(f"{source}: no rows")
    columns = list(rows[0].keys())
    if prompt_column or answer_column:
        format = format or "columns"
    if format is None:
        format = detect_format(rows, path=source)
    format = FORMAT_ALIASES.get(format, format)
    if format == "columns":
        if not (prompt_column and answer_column):
            missing = "--answer-column" if prompt_column else "--prompt-column"
            raise DataError(f"{source}: {missing} missing: rows read by column name need both --prompt-column and "
                            f"--answer-column (columns: {', '.join(columns)})")
        for col in (prompt_column, answer_column):
            if col not in columns:
                raise DataError(f"{source}: column {col!r} not found (columns: {', '.join(columns)})")

        def norm(row: dict, i: int) -> tuple[Any, str]:
            answer = row[answer_column]
            if answer is None or answer == "":
                raise RowError(answer_column, "empty answer", empty_gold=True)
            return row[prompt_column], format_number(answer) if isinstance(answer, (int, float)) else str(answer)

    elif format in FORMATS:
        spec = FORMATS[format]
        for options in spec.required:
            if not any(c in columns for c in options):
                raise DataError(
                    f"{source}: format {format!r} needs column {' or '.join(repr(c) for c in options)} "
                    f"(columns: {', '.join(columns)})"
                )
        norm = spec.normalize
    else:
        raise DataError(f"unknown format {format!r}; known formats: {', '.join(KNOWN_FORMATS)}")

    records, skipped = [], []
    for i, row in enumerate(rows):
        try:
            prompt, answer = norm(row, i)
        except RowError as e:
            if e.empty_gold:
                skipped.append((i, f"column {e.column!r}: {e}"))
                continue
            raise DataError(f"{source}: row {i}, column {e.column!r}: {e}") from None
        except (KeyError, TypeError) as e:
            raise DataError(f"{source}: row {i}: missing or malformed value ({e})") from None
        if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
            raise DataError(f"{source}: row {i}: empty prompt")
        rid = _first(row, id_column) if id_column else _first(row, "id", "idx", "unique_id")
        if rid is None and format == "verl":
            extra = row.get("extra_info")
            extra = _maybe_literal(extra, "extra_info") if extra else None
            rid = extra.get("index") if isinstance(extra, dict) else None
        records.append({"id": str(rid if rid is not None else i), "prompt": prompt, "answer": answer,
                        "source": source})
    if not records:
        raise DataError(f"{source}: no usable rows ({len(skipped)} rows without a gold answer)")
    if skipped:
        logger.warning("%s: skipped %d rows without a gold answer (first: row %d, %s)", source, len(skipped),
                       *skipped[0])
    return Loaded(records, format, source, skipped)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _load_hub(hub_id: str, config: str | None, split: str) -> list[dict]:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(
            f"{hub_id}: looks like a hub dataset id, but the hub is offline (HF_HUB_OFFLINE=1); "
            "download it first or pass a local file"
        )
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # the hub client raises many types (connection, 404, config)
        raise DataError(f"{hub_id}: could not load from the hub ({type(e).__name__}: {e})") from None
    return ds.to_list()


def load_records(
    source: str,
    *,
    format: str | None = None,
    split: str | None = None,
    config: str | None = None,
    prompt_column: str | None = None,
    answer_column: str | None = None,
    id_column: str | None = None,
    limit: int | None = None,
) -> Loaded:
    """Load ``source`` (a file path, a benchmark name such as ``gsm8k``/``math500``, or a hub id).

    The hub is tried only for ``owner/name`` ids that are not local paths.
    """
    if source in BENCHMARKS:
        resolved, bench = benchmark_source(source)
        format = format or bench.format
        if resolved == bench.hub_id:
            rows = _load_hub(bench.hub_id, config or bench.hub_config, split or bench.hub_split)
            source_name = bench.hub_id
        else:
            rows, source_name = read_rows(resolved), resolved
    elif Path(source).exists():
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in ROW_SUFFIXES)
            if not files:
                raise DataError(f"{source}: folder has no {', '.join(ROW_SUFFIXES)} files")
            rows = [r for f in files for r in read_rows(f)]
        else:
            rows = read_rows(path)
        source_name = str(path)
    elif _HUB_ID.match(source) and not source.endswith(ROW_SUFFIXES):
        known = {b.hub_id: b for b in BENCHMARKS.values()}
        bench = known.get(source)
        if bench and format is None:
            format = bench.format
        rows = _load_hub(source, config or (bench.hub_config if bench else None),
                         split or (bench.hub_split if bench else "train"))
        source_name = source
    else:
        raise DataError(
            f"{source}: no such file, and not a benchmark name ({', '.join(sorted(BENCHMARKS))}) "
            "or a hub id (owner/name)"
        )
    if limit is not None:
        rows = rows[:limit]
    return normalize_rows(rows, source=source_name, format=format, prompt_column=prompt_column,
                          answer_column=answer_column, id_column=id_column)
