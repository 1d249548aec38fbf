"""The labeled-sample schema: the hand-off between rollout, trainers and evals (one row per completion).

Every trainer reads this schema, so it is validated where it is read, with errors that point at the file,
column and first bad row.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SchemaError(ValueError):
    """A labeled dataset does not match the schema. Names the file, column, expected type and row."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 row: int | None = None):
        where = []
        if file:
            where.append(f"file {file}")
        if column:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.file, self.column, self.row = file, column, row


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Column:
    name: str
    expected: str  # human-readable type, used in error messages
    check: Callable[[Any], bool]
    nullable: bool = False
    required: bool = True


LABELED_COLUMNS: tuple[Column, ...] = (
    Column("prompt", "str or chat list [{role, content}]", lambda v: isinstance(v, str) or _is_chat(v)),
    Column("completion", "str", lambda v: isinstance(v, str)),
    Column("prompt_id", "non-empty str", lambda v: isinstance(v, str) and v != ""),
    Column("sample_idx", "int >= 0", lambda v: _is_int(v) and v >= 0),
    Column("reward", "finite float or null", _is_float, nullable=True),
    Column("label", "bool", lambda v: isinstance(v, bool)),
    Column("answer", "str", lambda v: isinstance(v, str)),
    Column("extracted", "str or null", lambda v: isinstance(v, str), nullable=True),
    Column("verifier", "str", lambda v: isinstance(v, str)),
    Column("finish_reason", "'stop' or 'length'", lambda v: v in ("stop", "length")),
    Column("group_pass_rate", "float in [0, 1]", lambda v: _is_float(v) and 0.0 <= v <= 1.0),
    Column("source", "str", lambda v: isinstance(v, str), nullable=True, required=False),
    Column("meta", "str (JSON) or dict", lambda v: isinstance(v, (str, dict)), nullable=True, required=False),
    Column("num_tokens", "int >= 0 (completion length in tokens)", lambda v: _is_int(v) and v >= 0,
           nullable=True, required=False),
    Column("logprobs", "list of floats (sampler's per-token log-probs)",
           lambda v: isinstance(v, list) and all(_is_float(x) for x in v), nullable=True, required=False),
    Column("token_ids", "list of ints (the sampler's completion tokens, one per logprobs entry)",
           lambda v: isinstance(v, list) and all(_is_int(x) for x in v), nullable=True, required=False),
)
LABELED_COLUMN_NAMES = tuple(c.name for c in LABELED_COLUMNS)


def prompt_id(prompt: str | list[dict]) -> str:
    """Stable id of a prompt: the first 16 hex digits of sha256 over its canonical JSON."""
    canonical = json.dumps(prompt, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def validate_labeled(rows: Iterable[Mapping[str, Any]], *, file: str | None = None,
                     check_groups: bool = True) -> int:
    """Check every row against :data:`LABELED_COLUMNS`; return the row count.

    Raises :class:`SchemaError` naming the file, the column, the expected type and the first bad row.
    Also checks the one cross-row invariant trainers rely on: ``group_pass_rate`` is the fraction of
    positives among the rows that share a ``prompt_id``.
    """
    n = 0
    groups: dict[str, list[int]] = {}
    rates: dict[str, tuple[float, int]] = {}
    for i, row in enumerate(rows):
        n += 1
        if i == 0:
            missing = [c.name for c in LABELED_COLUMNS if c.required and c.name not in row]
            if missing:
                col = next(c for c in LABELED_COLUMNS if c.name == missing[0])
                raise SchemaError(
                    f"missing (expected {col.expected}); all missing: {', '.join(missing)}",
                    file=file, column=missing[0], row=0,
                )
        for col in LABELED_COLUMNS:
            if col.name not in row:
                if col.required:
                    raise SchemaError(f"missing (expected {col.expected})", file=file, column=col.name, row=i)
                continue
            value = row[col.name]
            if value is None:
                if col.nullable:
                    continue
                raise SchemaError(f"null value, expected {col.expected}", file=file, column=col.name, row=i)
            if not col.check(value):
                raise SchemaError(
                    f"expected {col.expected}, got {type(value).__name__} {str(value)[:60]!r}",
                    file=file, column=col.name, row=i,
                )
        pos, total = groups.setdefault(row["prompt_id"], [0, 0])
        groups[row["prompt_id"]] = [pos + int(row["label"]), total + 1]
        rates.setdefault(row["prompt_id"], (row["group_pass_rate"], i))
    if n == 0:
        raise SchemaError("labeled dataset is empty", file=file)
    if not check_groups:
        return n
    for pid, (pos, total) in groups.items():
        rate, first_row = rates[pid]
        if abs(rate - pos / total) > 1e-6:
            raise SchemaError(
                f"group_pass_rate {rate} disagrees with the labels of prompt_id {pid} ({pos}/{total} positive)",
                file=file, column="group_pass_rate", row=first_row,
            )
    return n


def read_labeled(path: str | Path) -> list[dict]:
    """Read a labeled dataset (a parquet/jsonl file or a folder of parquet shards) and validate it."""
    from negtune.data.io import read_rows

    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise SchemaError("no *.parquet shards in folder", file=str(path))
    rows: list[dict] = []
    for f in files:
        shard = read_rows(f)
        validate_labeled(shard, file=str(f), check_groups=False)
        rows.extend(shard)
    validate_labeled(rows, file=str(path))  # group pass rates may span shards
    return rows
