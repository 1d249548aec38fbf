"""The ``checkpoint-N`` folders a ``transformers.Trainer`` writes into its output folder (resume, evaluation curves)."""

from __future__ import annotations

import json
import re
from pathlib import Path


def is_complete(checkpoint: Path) -> bool:
    """Whether a checkpoint folder was fully written: transformers writes trainer_state.json last."""
    try:
        json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def checkpoint_folders(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``folder`` (none when it does not exist), by N."""
    folder = Path(folder)
    found = sorted((int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else ())
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    return [p for _, p in found]


def global_step(folder: Path) -> int | None:
    """The step a checkpoint (or a finished run's folder, with its saved state) was written at, if recorded."""
    try:
        return int(json.loads((Path(folder) / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
