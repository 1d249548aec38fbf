"""Training rows from a source: the one place every trainer and ``negtune train`` reads training data through.

A source is a ``datasets.Dataset``, a list of dicts, a file (json/jsonl/csv/parquet), a ``negtune rollout``
folder (validated against the labeled schema) or, for question/answer data, a TOFU split name
(``forget10``, ``retain90``, ...). Errors name the file (or flag), the row and the column at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from negtune.data.io import ROW_SUFFIXES, DataError

KINDS = ("qa", "labeled", "sft")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def training_rows(source, kind: str, name: str = "train", *, tofu_root: str | Path | None = None,
                  flag: str | None = None, extra_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of ``kind`` from ``source``.

    - ``kind="qa"`` (unlearning): ``{"prompt", "answer"}`` per row, from question/answer, prompt/answer or
      prompt/completion columns; a string that is not a file name (no json/jsonl/csv/parquet suffix) is a TOFU split name, read
      from ``tofu_root`` (default: the shared TOFU folder, else the hub).
    - ``kind="labeled"``: rows with ``prompt``, ``completion``, a boolean ``label`` and ``extra_columns``.
    - ``kind="sft"``: fine-tuning text: ``prompt`` and ``completion``; a ``label`` column is optional and, when
      present (a labeled rollout), only its positive rows are kept.

    ``name`` says which data it is in errors (``forget dataset ...``); ``flag`` (``forget``) prefixes errors
    about a path or split name with the command-line flag that gave it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    where, rows = _read(source, kind, name, tofu_root, flag)
    if kind == "qa":
        return _qa(rows, where)
    if kind == "sft":
        return _sft(rows, where)
    return _labeled(rows, where, extra_columns)


def _read(source, kind: str, name: str, tofu_root, flag: str | None) -> tuple[str, list[dict[str, Any]]]:
    import datasets

    if isinstance(source, datasets.Dataset):
        return f"{name} dataset", source.to_list()
    if isinstance(source, (dict, datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = ", ".join(map(repr, source)) or "none"
        raise DataError(f"{name} dataset: got a dict of splits ({splits}), not rows; pass one split, e.g. "
                        f"dataset[{next(iter(source), 'train')!r}]")
    if not isinstance(source, (str, Path)):
        return f"{name} dataset", list(source)
    path = Path(source)
    prefix = f"--{flag} {source}: " if flag else ""
    if kind in ("labeled", "sft") and path.is_dir():
        from negtune.data.schema import read_labeled

        return f"{name} dataset {path}", read_labeled(path)
    if path.suffix.lower() in ROW_SUFFIXES:
        if not path.exists():
            raise DataError(f"{prefix or f'{path}: '}no such file")
        from negtune.data.io import read_rows

        try:
            return f"{name} dataset {path}", read_rows(path)
        except DataError as e:  # name the flag that gave the file, as for a missing file
            msg = str(e)
            if prefix and msg.startswith(f"{path}: "):
                msg = prefix + msg[len(f"{path}: "):]
            raise DataError(msg) from None
    if kind in ("labeled", "sft"):
        if not path.exists():
            raise DataError(f"{prefix or f'{name} dataset '}{source}: no such file or folder")
        raise DataError(f"{prefix or f'{name} dataset '}{source}: not a file with a known suffix "
                        f"({', '.join(ROW_SUFFIXES)}) nor a `negtune rollout` folder")
    if not _SPLIT_NAME.match(str(source)) or str(source).startswith("."):
        raise DataError(f"{prefix}{source!r} is not a TOFU split name (forget10, retain90, ...); a file must be "
                        f"passed with its suffix ({', '.join(ROW_SUFFIXES)})")
    from negtune.data.tofu import load_tofu_split

    try:
        return f"{name} dataset {source}", load_tofu_split(str(source), tofu_root)
    except DataError as e:
        raise DataError(f"{prefix}{e}") from None


def _qa(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        row = _assistant_turn(row, where, i)
        if "question" in row and "answer" in row:
            out.append({"prompt": row["question"], "answer": row["answer"]})
        elif "prompt" in row and ("answer" in row or "completion" in row):
            out.append({"prompt": row["prompt"], "answer": row["answer" if "answer" in row else "completion"]})
        else:
            raise DataError(f"{where}, row {i}: expected columns question/answer, prompt/answer or "
                            f"prompt/completion, got {sorted(row)}")
        q_col = "question" if "question" in row else "prompt"
        a_col = "answer" if "answer" in row else "completion"
        _check_text(out[-1]["prompt"], where, i, q_col, chat_ok=q_col == "prompt")
        _check_text(out[-1]["answer"], where, i, a_col)
    return out


def _check_text(value, where: str, i: int, col: str, chat_ok: bool = False) -> None:
    """A question/prompt/answer/completion cell must be non-empty text (a prompt may also be a chat list)."""
    if isinstance(value, str) and value.strip():
        return
    if chat_ok and isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return
    what = "empty" if isinstance(value, str) else f"a value of type {type(value).__name__} ({str(value)[:40]!r})"
    if value is None:
        what = "null"
    raise DataError(f"{where}, row {i}, column {col!r}: expected non-empty text, got {what}; fix or drop the row")


def _assistant_turn(row: dict[str, Any], where: str, i: int, col: str = "completion") -> dict[str, Any]:
    """TRL's conversational completion, ``[{"role": "assistant", "content": TEXT}]``, read as TEXT (the row copied):
    the prompt is rendered with the chat template and its generation prompt, so TEXT plus EOS is the assistant turn
    as the template ends it. Several messages (multi-turn, tool calls) are refused: one turn is what is trained."""
    value = row.get(col)
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return row
    roles = [m.get("role") for m in value]
    if roles != ["assistant"] or not isinstance(value[0].get("content"), str):
        raise DataError(f"{where}, row {i}, column {col!r}: a conversational completion must be one assistant "
                        f"message with text content ([{{'role': 'assistant', 'content': '...'}}]), got roles {roles}; "
                        "put earlier turns in the prompt")
    return {**row, col: value[0]["content"]}


def _labeled(rows: list[dict[str, Any]], where: str, extra_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    if not rows:
        raise DataError(f"{where} is empty")
    needed = ("prompt", "completion", "label", *extra_columns)
    rows = [_assistant_turn(row, where, i) for i, row in enumerate(rows)]
    for i, row in enumerate(rows):
        for col in needed:
            if col not in row:
                hint = " (a `negtune rollout` output has them all)" if extra_columns else ""
                raise DataError(f"{where}, row {i}: missing column {col!r} (needs {', '.join(needed)}){hint}; "
                                f"columns present: {', '.join(sorted(row))}")
        _check_text(row["prompt"], where, i, "prompt", chat_ok=True)
        if not isinstance(row["completion"], str):
            raise DataError(f"{where}, row {i}, column 'completion': expected text, got "
                            f"{type(row['completion']).__name__} ({str(row['completion'])[:40]!r}); fix or drop the row")
        if not isinstance(row["label"], bool):
            raise DataError(f"{where}, row {i}, column 'label': expected bool, got {row['label']!r}")
        if "group_pass_rate" in extra_columns:
            _check_pass_rate(row, where, i)
    return rows


def _check_pass_rate(row: dict[str, Any], where: str, i: int) -> None:
    """A row's ``group_pass_rate`` is a number in [0, 1] that its own label allows (a right completion's group
    has one right at least, a wrong one's one wrong); the whole-group check runs on rollout folders."""
    rate = row["group_pass_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise DataError(f"{where}, row {i}, column 'group_pass_rate': expected a number in [0, 1] (the fraction of "
                        f"the prompt's completions that are right), got {rate!r}")
    if (row["label"] and rate == 0.0) or (not row["label"] and rate == 1.0):
        raise DataError(f"{where}, row {i}, column 'group_pass_rate': {rate} contradicts the row's label "
                        f"{row['label']} (a group with a {'right' if row['label'] else 'wrong'} completion cannot "
                        f"have pass rate {rate:g})")


def _sft(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    if not rows:
        raise DataError(f"{where} is empty")
    rows = [_assistant_turn(row, where, i) for i, row in enumerate(rows)]
    for i, row in enumerate(rows):
        if "prompt" not in row or "completion" not in row:
            raise DataError(f"{where}, row {i}: fine-tuning rows need columns prompt and completion (label "
                            f"optional); columns present: {', '.join(sorted(row))}")
        if "label" in row and not isinstance(row["label"], bool):
            raise DataError(f"{where}, row {i}, column 'label': expected bool, got {row['label']!r}")
        if row.get("label", True):  # a negative row is left out, whatever its text
            _check_text(row["prompt"], where, i, "prompt", chat_ok=True)
            _check_text(row["completion"], where, i, "completion")
    kept = [r for r in rows if r.get("label", True)]
    if not kept:
        raise DataError(f"{where}: every row is labeled false; fine-tuning text needs rows to learn (label true "
                        "or no label column)")
    return kept
