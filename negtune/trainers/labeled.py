"""Reading positive/negative training rows from a labeled dataset (or any table with a ``label`` column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from negtune.data.io import DataError


def labeled_rows(data, name: str = "train", extra_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows with ``prompt``, ``completion``, a boolean ``label`` (and ``extra_columns``): a ``datasets.Dataset``,
    a list of dicts, or a path: a ``negtune rollout`` folder of parquet shards (validated against the labeled
    schema) or a parquet/jsonl/json/csv file. Errors name the file (for a path), the row and the column."""
    where = f"{name} dataset"
    if isinstance(data, (str, Path)):
        path = Path(data)
        where = f"{name} dataset {path}"
        if path.is_dir():
            from negtune.data.schema import read_labeled

            rows = read_labeled(path)
        else:
            from negtune.data.io import read_rows

            rows = read_rows(path)
    elif isinstance(data, datasets.Dataset):
        rows = data.to_list()
    else:
        rows = list(data)
    if not rows:
        raise DataError(f"{where} is empty")
    needed = ("prompt", "completion", "label", *extra_columns)
    for i, row in enumerate(rows):
        for col in needed:
            if col not in row:
                hint = " (a `negtune rollout` output has them all)" if extra_columns else ""
                raise DataError(f"{where}, row {i}: missing column {col!r} (needs {', '.join(needed)}){hint}; "
                                f"columns present: {', '.join(sorted(row))}")
        if not isinstance(row["label"], bool):
            raise DataError(f"{where}, row {i}, column 'label': expected bool, got {row['label']!r}")
    return rows
