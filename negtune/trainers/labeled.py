"""Reading positive/negative training rows from a labeled dataset (or any table with a ``label`` column)."""

from __future__ import annotations

from typing import Any

import datasets

from negtune.data.io import DataError


def labeled_rows(data, name: str = "train") -> list[dict[str, Any]]:
    """Rows with ``prompt``, ``completion`` and a boolean ``label``: a ``datasets.Dataset``, a list of dicts,
    or a path to a labeled parquet folder/file (validated against the schema)."""
    if isinstance(data, str):
        from negtune.data.schema import read_labeled

        rows = read_labeled(data)
    elif isinstance(data, datasets.Dataset):
        rows = data.to_list()
    else:
        rows = list(data)
    if not rows:
        raise DataError(f"{name} dataset is empty")
    for i, row in enumerate(rows):
        for col in ("prompt", "completion", "label"):
            if col not in row:
                raise DataError(f"{name} dataset, row {i}: missing column {col!r} (needs prompt, completion, label)")
        if not isinstance(row["label"], bool):
            raise DataError(f"{name} dataset, row {i}, column 'label': expected bool, got {row['label']!r}")
    return rows
