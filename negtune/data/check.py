"""``negtune data check``: load a file, folder, benchmark name or hub id and show what negtune reads from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from negtune.data.io import ROW_SUFFIXES, DataError


@dataclass
class DataCheckArgs:
    format: str | None = field(default=None, metadata={
        "help": "force a format (default: detect); 'labeled' and 'tofu' also accepted"})
    split: str | None = field(default=None, metadata={"help": "hub split"})
    config: str | None = field(default=None, metadata={"help": "hub config name"})
    prompt_column: str | None = field(default=None, metadata={"help": "the prompt column (format 'columns')"})
    answer_column: str | None = field(default=None, metadata={"help": "the gold-answer column (format 'columns')"})
    id_column: str | None = field(default=None, metadata={"help": "a column of stable row ids"})


def check_source(source: str, opts: DataCheckArgs) -> None:
    """Print what ``negtune data check SOURCE`` shows: the format, the row count and the first record (bad input: a
    DataError naming the file, column and row)."""
    from negtune.data.loaders import load_records
    from negtune.data.schema import read_labeled

    path = Path(source)
    if opts.format == "labeled" or (opts.format is None and _looks_labeled(path)):
        if path.is_dir():  # a `negtune rollout` folder: the whole labeled-sample schema
            rows, what = read_labeled(path), "negtune labeled-sample schema"
        else:  # a table: what the labeled trainers read (offline NFT/RFT also need group_pass_rate)
            from negtune.data.rows import training_rows

            rows, what = training_rows(str(path), "labeled"), "prompt, completion, label: what the labeled trainers read"
        pos = sum(r["label"] for r in rows)
        prompts = len({r.get("prompt_id", r["prompt"]) for r in rows})
        print(f"format: labeled ({what})\nrows: {len(rows)} ({pos} positive, {len(rows) - pos} negative, "
              f"{prompts} prompts)")
        print(_preview(rows[0]))
        return
    if opts.format == "tofu":
        from negtune.data.tofu import load_tofu_split

        rows = load_tofu_split(path.stem, path.parent)
        print(f"format: tofu (split {path.stem})\nrows: {len(rows)}")
        print(_preview(rows[0]))
        return
    loaded = load_records(source, format=opts.format, split=opts.split, config=opts.config,
                          prompt_column=opts.prompt_column, answer_column=opts.answer_column,
                          id_column=opts.id_column)
    print(f"format: {loaded.format}\nsource: {loaded.source}\nrows: {len(loaded)}")
    if loaded.skipped:
        rows_list = ", ".join(str(i) for i, _ in loaded.skipped[:10])
        print(f"skipped: {len(loaded.skipped)} rows without a gold answer (rows {rows_list}"
              f"{', ...' if len(loaded.skipped) > 10 else ''}; first: {loaded.skipped[0][1]})")
    print(_preview(loaded.records[0]))


def _preview(row: dict, most: int = 8) -> str:
    """The first row as JSON, long lists (a rollout's logprobs and token ids) cut to their first ``most``."""
    cut = {k: [*v[:most], f"... ({len(v)} values)"] if isinstance(v, list) and len(v) > most else v
           for k, v in row.items()}
    return json.dumps(cut, indent=2, ensure_ascii=False, default=str)


def _looks_labeled(path: Path) -> bool:
    from negtune.data.io import read_rows

    if path.is_dir():
        shards = sorted(path.glob("*.parquet"))
        if not shards:
            return False
        path = shards[0]
    if not path.is_file() or path.suffix.lower() not in ROW_SUFFIXES:
        return False
    try:
        first = read_rows(path)[0]
    except DataError:
        return False
    return "completion" in first and "label" in first
