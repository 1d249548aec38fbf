"""``negtune eval tofu``: load the eval sets, score the model on each, aggregate, compare with a retain model's
eval log (forget quality), and write ``eval_log.json``, ``results.json`` and the report.

Every run writes ``eval_log.json`` with the per-example values, which is what another run's ``--retain-log``
reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from negtune.data.io import DataError, atomic_write_text, out_lock
from negtune.data.prompts import PINNED_DATE, parse_date
from negtune.evaluation.tofu.metrics import (
    SPLITS,
    UTILITY_KEYS,
    forget_quality,
    model_utility,
    truth_ratio_score,
)
from negtune.evaluation.tofu.report import write_tofu_report
from negtune.evaluation.tofu.scorer import TofuScorer, score_split
from negtune.utils import threads

LOG_VERSION = 1
logger = logging.getLogger(__name__)


def fingerprint(questions: list[str]) -> str:
    return hashlib.sha256("\n".join(questions).encode()).hexdigest()[:16]


def aggregate(per_split: dict[str, dict[str, list]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for split, values in per_split.items():
        metrics[f"{split}_prob"] = float(np.mean(values["prob"]))
        metrics[f"{split}_rouge"] = float(np.mean(values["rouge"]))
        metrics[f"{split}_truth_ratio"] = truth_ratio_score(values["truth_ratio"], split)
    if all(k in metrics for k in UTILITY_KEYS):
        metrics["model_utility"] = model_utility(metrics)
    return metrics


def read_eval_log(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "eval_log.json"
    if not path.exists():
        raise DataError(f"--retain-log {path}: no such file (an eval_log.json written by `negtune eval tofu`)")
    log = json.loads(path.read_text())
    if log.get("negtune_tofu_eval_log") != LOG_VERSION or "forget" not in log.get("splits", {}):
        raise DataError(f"--retain-log {path}: not a negtune TOFU eval log with a forget split")
    return log


def check_template(retain_log: dict[str, Any], path: str, ours: str, cfg: TofuEvalConfig) -> dict[str, str]:
    """Refuse a retain log whose prompts were rendered otherwise (forget quality compares the truth ratios of the
    same prompts); a log from before fingerprints were recorded gets a warning (returned as a note)."""
    theirs = retain_log.get("template_fingerprint")
    if theirs is None:
        note = (f"--retain-log {path} records no prompt-template fingerprint (written by an older negtune): "
                f"cannot check that its prompts match this run's (fingerprint {ours}); forget quality assumes so")
        logger.warning(note)
        return {"template": note}
    if theirs != ours:
        s = retain_log.get("settings", {})
        raise DataError(
            f"--retain-log {path}: its prompts were rendered with another template (fingerprint {theirs}: template "
            f"{s.get('template')!r}, system prompt {s.get('system_prompt')!r}, date {s.get('date')!r}) than this "
            f"run's (fingerprint {ours}: template {cfg.template!r}, system prompt {cfg.system_prompt!r}, date "
            f"{cfg.date!r}); forget quality needs both models scored on the same prompts: rerun one of them with "
            "the other's --template / --system-prompt / --date")
    return {}


@dataclass
class TofuEvalConfig:
    """``negtune eval tofu`` settings (its flags are these fields)."""

    model: str = field(metadata={"help": "hub id, local model folder or a LoRA output folder"})
    out: str = field(metadata={"help": "output folder (eval_log.json, results.json, report.md)"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    forget_split: str = field(default="forget10", metadata={
        "help": "the TOFU forget split", "choices": ["forget01", "forget05", "forget10"]})
    tofu_root: str | None = field(default=None, metadata={
        "help": "folder of TOFU-format json files (default: the shared TOFU folder, else the hub)"})
    retain_log: str | None = field(default=None, metadata={
        "help": "eval_log.json of a retain-only model: gives forget quality"})
    template: str = field(default="chat", metadata={
        "help": "chat (the tokenizer's template), llama2, llama3, qa, none, or a string containing '{question}'"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "system prompt (chat template); open-unlearning's Llama-3.x models: 'You are a helpful assistant.'"})
    date: str = field(default=PINNED_DATE, metadata={
        "help": "today's date for chat templates that print it (Llama-3.x), pinned so prompts never depend on "
                "the clock; default: open-unlearning's date_string"})
    max_length: int | None = field(default=None, metadata={
        "help": "truncate question + answer to this many tokens before scoring (TOFU's own eval: 200); "
                "default: no truncation, as open-unlearning"})
    batch_size: int = field(default=8, metadata={
        "help": "questions per forward pass (each brings 1 + 1 + K answers)"})
    generation_batch_size: int = field(default=32, metadata={
        "help": "questions per (left-padded, greedy) generate call"})
    max_new_tokens: int = field(default=200, metadata={"help": "greedy generation length for ROUGE-L"})
    limit: int | None = field(default=None, metadata={"help": "first N questions of each eval set (quick checks)"})
    dtype: str = field(default="auto", metadata={"help": "model dtype"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda when visible, else cpu)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run the model repository's own code (off)"})
    checkpoints: bool = field(default=False, metadata={
        "help": "--model is a training output folder: evaluate each checkpoint-N in it and its final model, into "
                "OUT/step-N, and write the curve (OUT/curve.json, curve.md, curve.png)"})

    def __post_init__(self) -> None:
        from negtune.rollout.stage import check_run_values

        check_run_values(self)
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"--max-length must be >= 2 tokens, got {self.max_length}")
        try:
            parse_date(self.date)
        except ValueError as e:
            raise ValueError(f"--date: {e}") from None


def load_eval_sets(forget_split: str, root: str | None, limit: int | None) -> dict[str, list[dict]]:
    from negtune.data.tofu import load_tofu

    bench = load_tofu(forget_split, root)
    sets = {"forget": bench.forget_perturbed, "retain": bench.retain_perturbed,
            "real_authors": bench.real_authors, "world_facts": bench.world_facts}
    return {k: v[:limit] if limit else v for k, v in sets.items()}


def evaluate_tofu(cfg: TofuEvalConfig, model=None, tokenizer=None, progress: bool = True) -> dict[str, Any]:
    """Evaluate one model; writes ``eval_log.json``, ``results.json`` and ``report.md`` into ``cfg.out``
    (checked writable, and locked against a second run into it, before any work)."""
    if cfg.checkpoints:
        raise ValueError("cfg.checkpoints is set: negtune.evaluation.evaluate_checkpoints(cfg) evaluates a run's "
                         "checkpoints; evaluate_tofu evaluates one model")
    with out_lock(cfg.out):
        return _evaluate_tofu(cfg, model, tokenizer, progress)


def _evaluate_tofu(cfg: TofuEvalConfig, model, tokenizer, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    given = model is not None  # an in-memory model: cfg.model is not what is scored
    if given and tokenizer is None:
        raise ValueError("evaluate_tofu(model=...): pass its tokenizer too (tokenizer=...), or leave model out to "
                         "load cfg.model with its own")
    retain_log = read_eval_log(cfg.retain_log) if cfg.retain_log else None  # fail before the slow part
    sets = load_eval_sets(cfg.forget_split, cfg.tofu_root, cfg.limit)
    if retain_log is not None:
        theirs, questions = retain_log["splits"]["forget"], [r["question"] for r in sets["forget"]]
        if theirs.get("fingerprint") != fingerprint(questions):
            raise DataError(f"--retain-log {cfg.retain_log}: it was computed on other forget questions "
                            f"({theirs.get('n')} questions of split {retain_log.get('forget_split')!r}; this run "
                            f"has {len(questions)} of {cfg.forget_split!r}, limit {cfg.limit})")
    if model is None:
        from negtune.models.loading import load_model_and_tokenizer, resolve_adapter

        name, adapter = resolve_adapter(cfg.model, cfg.adapter)
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_model_and_tokenizer(name, adapter=adapter, dtype=cfg.dtype, device=device,
                                                    trust_remote_code=cfg.trust_remote_code, merge_adapter=True)
    scorer = TofuScorer(model, tokenizer, cfg.template, cfg.system_prompt, cfg.batch_size, cfg.max_new_tokens,
                        cfg.generation_batch_size, cfg.date, cfg.max_length)
    template_fp, probe = scorer.template_fingerprint()
    notes = {}
    if retain_log is not None:  # before the slow part
        notes.update(check_template(retain_log, cfg.retain_log, template_fp, cfg))
    t0 = time.monotonic()
    per_split = {}
    bar = tqdm(total=sum(len(v) for v in sets.values()), unit="question", desc="tofu eval", disable=not progress)
    for split in SPLITS:
        threads.adapt()  # (a no-op unless an entry point chose the threads)
        bar.set_postfix_str(split)
        per_split[split] = score_split(scorer, sets[split], split, progress=bar.update)
    bar.close()
    metrics = aggregate(per_split)
    if retain_log is not None:
        metrics["forget_quality"] = forget_quality(per_split["forget"]["truth_ratio"],
                                                   retain_log["splits"]["forget"]["truth_ratio"])
    else:
        metrics["forget_quality"] = None
        notes["forget_quality"] = ("missing: forget quality compares this model's forget-set truth ratios with "
                                   "those of a model never trained on the forget set; evaluate that model, then "
                                   "pass its eval_log.json with --retain-log")
    seconds = time.monotonic() - t0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    from negtune.models.loading import in_memory_record, scored_model

    # record what was scored: an object passed in is not cfg.model
    settings = asdict(cfg) | (in_memory_record(model) if given else scored_model(cfg.model, cfg.adapter))
    log = {"negtune_tofu_eval_log": LOG_VERSION, "forget_split": cfg.forget_split, "settings": settings,
           "template_fingerprint": template_fp, "template_probe": probe,
           "splits": {s: {"n": len(v["question"]), "fingerprint": fingerprint(v["question"]), **v}
                      for s, v in per_split.items()}}
    atomic_write_text(out / "eval_log.json", json.dumps(log))
    results = {"settings": settings | {"template_fingerprint": template_fp}, "metrics": metrics, "notes": notes,
               "seconds": round(seconds, 1), "questions": {s: len(v) for s, v in sets.items()}}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    write_tofu_report(results, out)
    return results
