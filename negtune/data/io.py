"""Reading and writing row files (jsonl, json, csv, parquet) with errors that name the file and line."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROW_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DataError(ValueError):
    """Input data cannot be used; the message names the file (and row/column where known)."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a jsonl / json (array or JSON lines) / csv / parquet file, as plain Python dicts."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in ROW_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(ROW_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        elif suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = _read_json_rows(path)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); re-save "
                        "the file as UTF-8") from None
    if not rows:
        raise DataError(f"{path}: file has no rows")
    return rows


def _read_json_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON array at line {e.lineno}: {e.msg}") from None
        rows = data
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i} is a {type(row).__name__}, expected a JSON object")
    return rows


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file next to it (``.<name>.<random>.tmp``,
    same folder, so the rename stays on one filesystem), which is then renamed over ``path``. A killed writer
    never leaves half a file; a writer that raises leaves no temporary file either."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write` of a text file (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write JSON lines atomically (:func:`atomic_write`), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    atomic_write(path, write)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def prepare_out(path: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """Check before any work is done that the output folder ``path`` can be written: create it (``create``),
    or only probe the nearest existing folder, so a refused run leaves nothing behind (``negtune train``,
    whose Trainer makes the folder itself)."""
    path = Path(path)
    if not create:
        return _probe_out(path, flag)
    if path.exists() and not path.is_dir():
        raise DataError(f"{flag} {path} is a file, not a folder; pass a folder (it is created when missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise DataError(f"{flag} {path} is not writable ({e.strerror or e}); pass a folder you can write to"
                        ) from None
    return path


def _probe_out(folder: Path, flag: str) -> Path:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{flag} {folder} is a file, not a folder; pass a folder path")
    if existing is not None and not existing.is_dir():
        raise DataError(f"{flag} {folder}: {existing} is a file, so the folder cannot be made; pass a folder path")
    try:
        with tempfile.TemporaryFile(dir=existing or Path.cwd(), prefix=".negtune-write-test-"):
            pass
    except OSError as e:
        raise DataError(f"{flag} {folder}: not writable ({e.strerror or e}); pass a folder you can write to"
                        ) from None
    return folder


@contextmanager
def out_lock(path: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Hold ``path/.negtune.lock`` (an exclusive ``flock``) for a run: a second run into the same folder at the
    same time is refused instead of redoing (and racing) the first one's work."""
    import fcntl

    path = prepare_out(path, flag)
    lock = path / ".negtune.lock"
    f = open(lock, "a")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{flag} {path} is in use by another negtune run (it holds {lock}); wait for it to "
                            "finish, or pass another folder") from None
        yield path
    finally:
        f.close()
