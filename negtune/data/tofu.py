"""TOFU (Maini et al. 2024) splits from local json files (the hub layout) or the hub ``locuslab/TOFU``.

The same loader reads the real files (``../shared/data/tofu``) and the synthetic TOFU-format set that
:mod:`negtune.data.tasks.facts` writes, so every TOFU stage runs offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from negtune.data.io import DataError, read_rows
from negtune.data.paths import tofu_dir

TOFU_HUB_ID = "locuslab/TOFU"
# forget split -> the retain split that is its complement (TOFU's naming).
RETAIN_FOR_FORGET = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
# For each eval set, the columns every row must have.
_REQUIRED = {
    "perturbed": ("question", "answer", "paraphrased_answer", "perturbed_answer"),
    "plain": ("question", "answer"),
    "real_perturbed": ("question", "answer", "perturbed_answer"),
}


def _required_columns(split: str) -> tuple[str, ...]:
    if split in ("real_authors_perturbed", "world_facts_perturbed"):
        return _REQUIRED["real_perturbed"]
    if split.endswith("_perturbed"):
        return _REQUIRED["perturbed"]
    return _REQUIRED["plain"]


def load_tofu_split(split: str, root: str | Path | None = None) -> list[dict]:
    """One TOFU split (``forget10``, ``retain90``, ``forget10_perturbed``, ``world_facts_perturbed``, ...).

    ``root``: a folder of ``<split>.json`` files; default the shared TOFU folder, then the hub.
    """
    root = Path(root) if root is not None else tofu_dir()
    if root is not None:
        if not root.is_dir():
            raise DataError(f"TOFU folder {root}: no such folder (it holds one <split>.json per split: forget10.json, "
                            "retain90.json, ...)")
        path = root / f"{split}.json"
        if not path.exists():
            known = sorted(p.stem for p in root.glob("*.json"))
            raise DataError(f"{path}: no TOFU split {split!r} in {root} (available: {', '.join(known)})")
        rows, source = read_rows(path), str(path)
    else:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise DataError(f"TOFU split {split!r}: no local TOFU folder and the hub is offline")
        import datasets

        try:
            rows = datasets.load_dataset(TOFU_HUB_ID, split, split="train").to_list()
        except Exception as e:  # network / unknown config
            raise DataError(f"{TOFU_HUB_ID} config {split!r}: could not load ({type(e).__name__}: {e})") from None
        source = f"{TOFU_HUB_ID}:{split}"
    for col in _required_columns(split):
        for i, row in enumerate(rows):
            if col not in row or row[col] in (None, ""):
                raise DataError(f"{source}: row {i}: missing column {col!r} required for TOFU split {split!r}")
    if split.endswith("_perturbed"):
        for i, row in enumerate(rows):
            if not isinstance(row["perturbed_answer"], list) or not row["perturbed_answer"]:
                raise DataError(f"{source}: row {i}, column 'perturbed_answer': expected a non-empty list")
    return rows


@dataclass
class TofuBenchmark:
    """Everything an unlearning run and its evaluation need for one forget split."""

    forget_split: str
    forget: list[dict]
    retain: list[dict]
    forget_perturbed: list[dict]
    retain_perturbed: list[dict]
    real_authors: list[dict]
    world_facts: list[dict]


def load_tofu(forget_split: str = "forget10", root: str | Path | None = None) -> TofuBenchmark:
    if forget_split not in RETAIN_FOR_FORGET:
        raise DataError(f"unknown TOFU forget split {forget_split!r}; known: {', '.join(RETAIN_FOR_FORGET)}")
    return TofuBenchmark(
        forget_split=forget_split,
        forget=load_tofu_split(forget_split, root),
        retain=load_tofu_split(RETAIN_FOR_FORGET[forget_split], root),
        forget_perturbed=load_tofu_split(f"{forget_split}_perturbed", root),
        retain_perturbed=load_tofu_split("retain_perturbed", root),
        real_authors=load_tofu_split("real_authors_perturbed", root),
        world_facts=load_tofu_split("world_facts_perturbed", root),
    )
