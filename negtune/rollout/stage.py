"""The rollout-and-verify stage: prompts -> n completions each -> verdicts -> labeled parquet shards.

Resumable: prompts are cut into fixed shards; a shard is written atomically (temp file + rename) once
generated and verified, and a rerun of the same command skips finished shards. The settings that shape the
samples are stored in ``settings.json``; a rerun with different ones into the same folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from negtune.data.io import DataError, atomic_write, atomic_write_text, out_lock
from negtune.data.loaders import load_records
from negtune.data.prompts import add_marker, format_prompt, resolve_marker
from negtune.data.schema import prompt_id, read_labeled
from negtune.rollout.engines import Engine, SamplingConfig
from negtune.rollout.engines.options import EngineOptions
from negtune.rollout.verify_pool import VerifierPool, VerifyStats
from negtune.utils import threads

logger = logging.getLogger(__name__)

# Settings that change what is sampled or how it is labeled: a resumed run must match them exactly.
_IDENTITY = ("model", "adapter", "dataset", "format", "split", "config", "prompt_column", "answer_column",
             "template", "n", "temperature", "top_p", "max_new_tokens", "seed", "stop", "logprobs", "limit",
             "shard_size", "verifier", "engine", "data_fingerprint")


class RolloutSettingsError(ValueError):
    pass


@dataclass
class RolloutConfig(EngineOptions):
    """Everything ``negtune rollout`` takes (its flags are these fields). Sampling: temperature 0 = greedy."""

    model: str = field(metadata={"help": "hub id, local model folder or a LoRA output folder"})
    dataset: str = field(metadata={"help": "file/folder, benchmark name (gsm8k, math500, ...) or hub id"})
    out: str = field(metadata={"help": "output folder (parquet shards, stats.json); reruns resume"})
    n: int = field(default=8, metadata={"help": "samples per prompt"})
    verifier: str = field(default="math", metadata={
        "help": "math, gsm8k, numeric, exact, choice or module:function"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    format: str | None = field(default=None, metadata={"help": "dataset format (default: detect)"})
    split: str | None = field(default=None, metadata={"help": "hub split"})
    config: str | None = field(default=None, metadata={"help": "hub config name"})
    prompt_column: str | None = field(default=None, metadata={"help": "the prompt column (format 'columns')"})
    answer_column: str | None = field(default=None, metadata={"help": "the gold-answer column (format 'columns')"})
    template: str = field(default="qwen-math-cot", metadata={
        "help": "qwen-math-cot, plain, or a string containing '{problem}'"})
    marker: str = field(default="auto", metadata={
        "help": "text appended to every prompt's last user message: 'auto' = the quality marker saved with the "
                "model (a `negtune train nat` output samples with its positive marker), 'none', or the text"})
    temperature: float = field(default=1.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    max_new_tokens: int = field(default=512, metadata={"help": "tokens per completion at most"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    stop: list[str] = field(default_factory=list, metadata={"help": "stop strings"})
    logprobs: bool = field(default=False, metadata={
        "help": "store the sampler's per-token log-probs and its token ids (offline NFT then uses them as pi_old)"})
    limit: int | None = field(default=None, metadata={"help": "first N prompts only"})
    shard_size: int = field(default=64, metadata={"help": "prompts per shard (the unit of resumption)"})
    verify_timeout: float = field(default=5.0, metadata={"help": "verifier seconds per sample"})
    verify_workers: int | None = field(default=None, metadata={
        "help": "verifier processes (default: all cores; 0: inline)"})

    def __post_init__(self) -> None:
        check_run_values(self)
        self.sampling()  # n, temperature, top_p, max_new_tokens

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(n=self.n, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=self.seed, stop=list(self.stop),
                              logprobs=self.logprobs)


def check_run_values(cfg: Any) -> None:
    """Refuse odd values of the flags a run config shares (``--limit``, ``--n``, ``--batch-size``, ...)."""
    if getattr(cfg, "limit", None) is not None and cfg.limit <= 0:
        raise ValueError(f"--limit must be >= 1 (or left out for all rows), got {cfg.limit}")
    for name in ("n", "batch_size", "shard_size", "generation_batch_size", "iterations"):
        value = getattr(cfg, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if getattr(cfg, "temperature", None) == 0 and getattr(cfg, "n", 1) > 1:
        raise ValueError(f"--temperature 0 is greedy: every one of --n {cfg.n} samples would be the same "
                         "completion; pass --n 1 with it, or a temperature > 0")


def data_fingerprint(records: list[dict]) -> str:
    """sha256 (16 hex digits) of the records' prompts and answers, in order: a resume must see the same data."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r["prompt"], r["answer"]], sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def check_settings(out: Path, settings: dict[str, Any], what: str = "a rollout", data_flag: str = "--dataset") -> bool:
    """Refuse a folder made with other settings; True when ``settings.json`` is already there. ``what`` names
    the folder's content and ``data_flag`` the flag whose data the fingerprint covers, in the error."""
    path = out / "settings.json"
    if not path.exists():
        return False
    before = json.loads(path.read_text())
    diff = {k: (before.get(k), settings.get(k)) for k in settings
            if before.get(k) != settings.get(k) and not (k == "data_fingerprint" and k not in before)}
    if diff:
        lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        hint = f" (the data of {data_flag} changed since)" if "data_fingerprint" in diff else ""
        raise RolloutSettingsError(
            f"{out} holds {what} made with other settings ({lines}){hint}; use a new --out folder, "
            "or rerun with the original settings to resume"
        )
    return True


def prompt_ids(prompts: list) -> tuple[list[str], int]:
    """One ``prompt_id`` per row: the prompt's hash, with ``-2``, ``-3``, ... for the 2nd, 3rd, ... row of the
    same prompt (each row is its own group); and the number of such duplicate rows."""
    seen: Counter = Counter()
    ids = []
    for p in prompts:
        base = prompt_id(p)
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids, sum(c - 1 for c in seen.values())


def context_limit(engine: Any) -> tuple[int, Any] | None:
    """``(max tokens, prompt -> token count)`` of an engine's model, or None when unknown."""
    tok = getattr(engine, "tokenizer", None)
    model = getattr(engine, "model", None)
    if tok is None:
        return None
    limits = [getattr(getattr(model, "config", None), "max_position_embeddings", None),
              getattr(tok, "model_max_length", None)]
    limits.append(getattr(engine, "max_model_len", None))  # vLLM's own, or what the servers report
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**8]
    if not limits:
        return None
    from negtune.data.prompts import render_chat

    return min(limits), lambda p: len(render_chat(tok, p))


def write_shard(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows), str(tmp)))


def _finite_rewards(verdicts: list) -> tuple[list, int]:
    """A NaN/inf reward (a custom verifier's) is undecidable: reward None, label False. Returns the count."""
    bad = 0
    for i, v in enumerate(verdicts):
        if isinstance(v.reward, float) and not math.isfinite(v.reward):
            verdicts[i] = replace(v, reward=None, label=False)
            bad += 1
    return verdicts, bad


def _label_rows(records: list[dict], prompts: list, completions: list, verdicts: list, cfg: RolloutConfig,
                shard_seed: int, engine: str, pids: list[str]) -> list[dict]:
    rows, k = [], 0
    for rec, prompt, group, pid in zip(records, prompts, completions, pids):
        group_verdicts = verdicts[k : k + len(group)]
        k += len(group)
        rate = sum(v.label for v in group_verdicts) / len(group)
        meta = json.dumps({"id": rec["id"], "model": cfg.model, "adapter": cfg.adapter, "engine": engine,
                           "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": shard_seed})
        for j, (c, v) in enumerate(zip(group, group_verdicts)):
            row = {"prompt": prompt, "completion": c.text, "prompt_id": pid, "sample_idx": j, "reward": v.reward,
                   "label": v.label, "answer": rec["answer"], "extracted": v.extracted, "verifier": cfg.verifier,
                   "finish_reason": c.finish_reason, "group_pass_rate": rate, "source": rec["source"],
                   "meta": meta, "num_tokens": len(c.token_ids)}
            if cfg.logprobs:  # the tokens too: re-tokenising the text need not give the sampler's tokens back
                row["logprobs"], row["token_ids"] = c.logprobs, list(c.token_ids)
            rows.append(row)
    return rows


def compute_stats(rows: list[dict], n: int) -> dict[str, Any]:
    """pass@1, pass@n, group pass-rate histogram, group kinds, truncation and undecidable counts."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["prompt_id"], []).append(r)
    positives = [sum(x["label"] for x in g) for g in groups.values()]
    hist = Counter(positives)
    return {
        "prompts": len(groups),
        "samples": len(rows),
        "pass@1": sum(r["label"] for r in rows) / len(rows),
        f"pass@{n}": sum(p > 0 for p in positives) / len(groups),
        "positives": sum(positives),
        "negatives": len(rows) - sum(positives),
        "groups_all_correct": sum(p == len(g) for p, g in zip(positives, groups.values())),
        "groups_all_wrong": sum(p == 0 for p in positives),
        "groups_mixed": sum(0 < p < len(g) for p, g in zip(positives, groups.values())),
        "pass_rate_histogram": {f"{k}/{n}": hist.get(k, 0) for k in range(n + 1)},
        "truncation_rate": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
        "undecidable": sum(r["reward"] is None for r in rows),
    }


def rollout_and_verify(cfg: RolloutConfig, engine: Engine | None = None, progress: bool = True):
    """Run (or resume) the stage; returns ``(dataset, stats)``: the labeled samples as a ``datasets.Dataset`` and
    the statistics written to ``stats.json`` (:func:`compute_stats` plus timing, skipped rows and settings).

    ``engine``: an already-built engine (in-process use by trainers/evals); default built from ``cfg``.
    """
    import datasets
    from tqdm.auto import tqdm

    from negtune.rollout.verifiers import load as load_verifier

    load_verifier(cfg.verifier)  # an unknown verifier fails before any generation
    sampling = cfg.sampling()
    out = Path(cfg.out)
    with out_lock(out):
        loaded = load_records(cfg.dataset, format=cfg.format, split=cfg.split, config=cfg.config,
                              prompt_column=cfg.prompt_column, answer_column=cfg.answer_column, limit=cfg.limit)
        records = loaded.records
        marker = resolve_marker(cfg.marker, cfg.model, cfg.adapter)
        if marker:
            logger.info("every prompt ends with the marker %r (--marker %s)", marker, cfg.marker)
        prompts = [add_marker(format_prompt(r["prompt"], cfg.template), marker) for r in records]
        pids, duplicates = prompt_ids(prompts)
        if duplicates:
            logger.warning("%s: %d row(s) repeat an earlier row's prompt; each row is sampled as its own group "
                           "(prompt_id with a -2, -3, ... suffix)", cfg.dataset, duplicates)
        shards = [range(i, min(i + cfg.shard_size, len(records))) for i in range(0, len(records), cfg.shard_size)]
        engine_kind = engine.name if engine is not None else cfg.engine
        if engine_kind == "auto":
            from negtune.rollout.engines import vllm_available

            engine_kind = "vllm" if vllm_available() else "hf"
        settings = {k: getattr(cfg, k) for k in _IDENTITY if k != "data_fingerprint"} | {
            "engine": engine_kind, "data_fingerprint": data_fingerprint(records), "marker": marker}
        has_settings = check_settings(out, settings)
        for stale in out.glob(".shard-*.tmp"):  # a killed writer's leftovers; finished shards are never partial
            stale.unlink()

        built = False
        todo = [k for k in range(len(shards)) if not (out / f"shard-{k:05d}.parquet").exists()
                and not (out / f"shard-{k:05d}.empty").exists()]
        done_prompts = sum(len(shards[k]) for k in range(len(shards)) if k not in todo)
        if todo and engine is None:
            engine = replace(cfg, engine=engine_kind).build_engine(cfg.model, cfg.adapter, cfg.seed)
            built = True
        if not has_settings:  # written once the model has loaded: a failed start does not claim the folder
            atomic_write_text(out / "settings.json", json.dumps(settings, indent=2))
        limit = context_limit(engine) if todo else None
        bar = tqdm(total=len(records), initial=done_prompts, unit="prompt", desc="rollout", disable=not progress)
        try:
            if todo:
                with VerifierPool(cfg.verifier, workers=cfg.verify_workers, timeout=cfg.verify_timeout) as pool:
                    for k in todo:
                        _run_shard(k, shards[k], records, prompts, pids, cfg, sampling, engine, engine_kind, pool,
                                   limit, out)
                        bar.update(len(shards[k]))
        finally:
            bar.close()
            if built and hasattr(engine, "close"):
                engine.close()

        rows = read_labeled(out) if any(out.glob("shard-*.parquet")) else []
        totals = _timing_totals(out, len(shards))
        if not rows:
            raise DataError(f"{cfg.dataset}: no prompt fits the model's context ({totals['too_long_prompts']} "
                            f"too long with --max-new-tokens {cfg.max_new_tokens}, rows "
                            f"{_names(totals['too_long_rows'])}); shorten them or lower --max-new-tokens")
        stats = compute_stats(rows, sampling.n)
        stats.update(totals)
        stats.update(skipped_rows=len(loaded.skipped), duplicate_prompts=duplicates, settings=settings)
        atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))
    return datasets.Dataset.from_list(rows), stats


def _names(ids: list) -> str:
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _run_shard(k: int, idx: range, records: list[dict], prompts: list, pids: list[str], cfg: RolloutConfig,
               sampling: SamplingConfig, engine: Engine, engine_kind: str, pool: VerifierPool,
               limit: tuple[int, Any] | None, out: Path) -> None:
    shard_seed = cfg.seed + 7919 * k
    threads.adapt()  # a long rollout notices a job that started beside it
    keep, too_long = list(idx), []
    if limit is not None:
        max_len, count = limit
        keep = [i for i in idx if count(prompts[i]) + cfg.max_new_tokens <= max_len]
        too_long = [records[i]["id"] for i in idx if i not in set(keep)]
        if too_long:
            logger.warning("%s: skipped %d prompt(s) longer than the model's context of %d tokens minus "
                           "--max-new-tokens %d: rows %s", cfg.dataset, len(too_long), max_len,
                           cfg.max_new_tokens, _names(too_long))
    t0 = time.monotonic()
    completions = engine.generate([prompts[i] for i in keep], replace(sampling, seed=shard_seed)) if keep else []
    gen_s = time.monotonic() - t0
    flat = [c for group in completions for c in group]
    answers = [records[i]["answer"] for i in keep for _ in range(sampling.n)]
    verdicts, vstats = pool.verify([c.text for c in flat], answers) if flat else ([], VerifyStats())
    verdicts, non_finite = _finite_rewards(list(verdicts))
    if non_finite:
        logger.warning("verifier %s returned %d NaN/inf reward(s): stored as reward None (undecidable)",
                       cfg.verifier, non_finite)
    rows = _label_rows([records[i] for i in keep], [prompts[i] for i in keep], completions, verdicts, cfg,
                       shard_seed, engine_kind, [pids[i] for i in keep])
    timing = {"generate_seconds": gen_s, "generated_tokens": sum(len(c.token_ids) for c in flat),
              "verify": {k2: v for k2, v in asdict(vstats).items() if k2 != "statuses"},
              "too_long": too_long, "non_finite_rewards": non_finite}
    atomic_write_text(out / f"shard-{k:05d}.stats.json", json.dumps(timing))
    if rows:
        write_shard(out / f"shard-{k:05d}.parquet", rows)
    else:  # every prompt of the shard too long: an empty marker keeps the shard done on a rerun
        atomic_write_text(out / f"shard-{k:05d}.empty", "")


def _timing_totals(out: Path, n_shards: int) -> dict[str, Any]:
    gen_s = tokens = 0.0
    too_long: list = []
    non_finite = 0
    verify = VerifyStats()
    for k in range(n_shards):
        path = out / f"shard-{k:05d}.stats.json"
        if path.exists():
            t = json.loads(path.read_text())
            gen_s += t["generate_seconds"]
            tokens += t["generated_tokens"]
            verify.add(VerifyStats(**t["verify"]))
            too_long += t.get("too_long", [])
            non_finite += t.get("non_finite_rewards", 0)
    return {"generated_tokens": int(tokens), "generate_seconds": round(gen_s, 3),
            "tokens_per_second": round(tokens / gen_s, 1) if gen_s else None,
            "verifier_seconds": round(verify.seconds, 3), "verifier_timeouts": verify.timeouts,
            "verifier_errors": verify.errors, "verifier_first_error": verify.first_error,
            "too_long_prompts": len(too_long), "too_long_rows": too_long, "non_finite_rewards": non_finite}


def print_summary(stats: dict[str, Any], out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    n = stats["settings"]["n"]
    table = Table(title=f"rollout: {out}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in [
        ("prompts / samples", f"{stats['prompts']} / {stats['samples']}"),
        ("pass@1", f"{stats['pass@1']:.3f}"),
        (f"pass@{n}", f"{stats[f'pass@{n}']:.3f}"),
        ("positives / negatives", f"{stats['positives']} / {stats['negatives']}"),
        ("groups all-correct / all-wrong / mixed",
         f"{stats['groups_all_correct']} / {stats['groups_all_wrong']} / {stats['groups_mixed']}"),
        ("pass-rate histogram", " ".join(f"{k}:{v}" for k, v in stats["pass_rate_histogram"].items())),
        ("truncated (length)", f"{stats['truncation_rate']:.1%}"),
        ("undecidable (timeouts, errors)",
         f"{stats['undecidable']} ({stats['verifier_timeouts']}, {stats['verifier_errors']})"),
        ("generation tokens/s", f"{stats['tokens_per_second']}"),
        ("verifier seconds", f"{stats['verifier_seconds']}"),
    ]:
        table.add_row(key, value)
    Console().print(table)
