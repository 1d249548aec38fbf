"""The step-values stage: a labeled rollout's samples cut into steps, each prefix valued by Monte-Carlo
continuations (``negtune step-values``).

For each annotated sample with steps s_1..s_m, the prefixes s_1..s_i (i < m) are each continued ``k`` times by
the policy and the continuations verified with the rollout's own verifier; Q̂_i = the fraction correct. The
prompt alone (the empty prefix) is valued the same way, once per prompt, so every value of a sample, Q_0
included, comes from the same sampler and settings. The last step's value is the sample's label (1 right, 0
wrong). ``--max-new-tokens`` bounds the whole completion, prefix included, as the rollout's does: a
continuation that would run past it counts as wrong. The output is the rollout's rows with these columns, read
by ``negtune train step_pg`` and ``negtune train step_dpo`` (see :mod:`negtune.losses.steps` for what the values
mean):

- ``step_q0`` / ``step_q0_continuation``: the prompt's value and one right continuation of it (on every row of
  a prompt with annotated samples, else null);
- ``step_ends``: end offset of each step in ``completion`` (null for rows not annotated);
- ``step_values``: Q̂ after each step (the last = the label);
- ``step_samples``: continuations drawn from each prefix (the last 0; 0 for a prefix past ``--max-prefixes``);
- ``step_continuation``: one right continuation (that ended, not cut by the length limit) found from each
  prefix, or null (the "chosen" side of a Self-Explore step-level pair).

``stats.json`` counts the continuation samples and tokens: the sampling budget that an outcome-only method
compared with this one should be given as extra rollout samples. Resumable like the rollout stage: the prompts
are cut into fixed shards, each written atomically, a rerun skips finished shards, and ``settings.json``
(with a fingerprint of the rollout's samples) refuses a rerun with other settings or another rollout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from negtune.data.io import DataError, atomic_write_text, out_lock
from negtune.data.prompts import as_chat, render_prompt_text
from negtune.data.schema import read_labeled
from negtune.losses.steps import SEPARATORS, first_pit, step_ends
from negtune.rollout.engines import SamplingConfig
from negtune.rollout.engines.options import EngineOptions
from negtune.rollout.stage import check_run_values, check_settings, write_shard
from negtune.rollout.verify_pool import VerifierPool
from negtune.utils import threads

logger = logging.getLogger(__name__)

_IDENTITY = ("rollout", "model", "adapter", "k", "separator", "samples", "temperature", "top_p", "max_new_tokens",
             "seed", "shard_size", "max_prefixes", "engine", "data_fingerprint")
WHICH = ("negatives", "all")


@dataclass
class StepValuesConfig(EngineOptions):
    """Everything ``negtune step-values`` takes (its flags are these fields)."""

    rollout: str = field(metadata={"help": "a `negtune rollout` output folder (or labeled parquet/jsonl file)"})
    model: str = field(metadata={"help": "the policy whose values are estimated (the rollout's sampler, or the "
                                         "SFT/RFT model): hub id, folder or LoRA output folder"})
    out: str = field(metadata={"help": "output folder (parquet shards, stats.json); reruns resume"})
    k: int = field(default=4, metadata={"help": "continuations per prefix (Self-Explore: 4)"})
    separator: str = field(default="newline", metadata={
        "help": f"where steps are cut: {', '.join(SEPARATORS)} or a regular expression (line breaks end the step "
                "before, spaces start the next)"})
    samples: str = field(default="negatives", metadata={
        "help": "which samples get step values: negatives (what the step-level methods need; positives keep "
                "their outcome) or all", "choices": list(WHICH)})
    max_prefixes: int | None = field(default=None, metadata={
        "help": "value at most this many prefixes per sample (the first ones); the last value estimated carries "
                "over the rest (their steps get no advantage of their own) and the first pit is placed no later "
                "than the first step not valued"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    temperature: float = field(default=0.7, metadata={"help": "continuation temperature (Self-Explore: 0.7)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "tokens per completion at most, prefix included (default: the rollout's, from its settings.json, "
                "else 512)"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    shard_size: int = field(default=32, metadata={
        "help": "samples per shard, whole prompts (the unit of resumption)"})
    verify_timeout: float = field(default=5.0, metadata={"help": "verifier seconds per continuation"})
    verify_workers: int | None = field(default=None, metadata={
        "help": "verifier processes (default: all cores; 0: inline)"})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"--k must be >= 1, got {self.k}")
        if self.shard_size < 1:
            raise ValueError(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.max_prefixes is not None and self.max_prefixes < 0:
            raise ValueError(f"--max-prefixes must be >= 0, got {self.max_prefixes}")
        if self.samples not in WHICH:
            raise ValueError(f"--samples {self.samples!r}: expected one of {', '.join(WHICH)}")
        check_run_values(self)  # --batch-size
        if self.temperature == 0 and self.k > 1:
            raise ValueError(f"--temperature 0 is greedy: the --k {self.k} continuations of a prefix would all be "
                             "the same; pass --k 1 with it, or a temperature > 0")
        try:
            re.compile(SEPARATORS.get(self.separator, self.separator))
        except re.error as e:
            raise ValueError(f"--separator {self.separator!r}: not a regular expression ({e})") from None
        SamplingConfig(n=self.k, temperature=self.temperature, top_p=self.top_p,
                       max_new_tokens=self.max_new_tokens or 1)


def _annotated(row: dict, cfg: StepValuesConfig) -> bool:
    return not (cfg.samples == "negatives" and row["label"])


def _prefixes(rows: list[dict], cfg: StepValuesConfig) -> list[tuple[int, int, int]]:
    """(row, step, end offset) of every prefix to continue: the empty prefix (step -1) of the first row of each
    prompt with an annotated sample, then steps 0..m-2 of each annotated row."""
    todo, valued_prompts = [], set()
    for i, r in enumerate(rows):
        if not _annotated(r, cfg):
            continue
        if r["prompt_id"] not in valued_prompts:
            valued_prompts.add(r["prompt_id"])
            todo.append((i, -1, 0))
        ends = step_ends(r["completion"], cfg.separator)
        n = len(ends) - 1 if cfg.max_prefixes is None else min(len(ends) - 1, cfg.max_prefixes)
        todo += [(i, j, ends[j]) for j in range(n)]
    return todo


def _annotate(rows: list[dict], cfg: StepValuesConfig, engine, pool: VerifierPool, seed: int,
              max_new_tokens: int) -> tuple[list, dict]:
    """The shard's rows (whole prompts) with the step columns, and its budget (continuation samples, tokens,
    seconds)."""
    tok = engine.tokenizer
    todo = _prefixes(rows, cfg)
    encoded, prefix_tokens, prompts = [], [], {}
    for i, _, end in todo:
        if i not in prompts:  # a row's prompt is rendered and counted once for all its prefixes
            text, special = render_prompt_text(tok, as_chat(rows[i]["prompt"]))
            prompts[i] = text, special, len(tok(text, add_special_tokens=special)["input_ids"])
        text, special, n_prompt = prompts[i]
        ids = tok(text + rows[i]["completion"][:end], add_special_tokens=special)["input_ids"]
        encoded.append(ids)
        prefix_tokens.append(len(ids) - n_prompt)
    # the completion budget counts the prefix, as the rollout's did; at least one token is generated
    sampling = SamplingConfig(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                              max_new_tokens=max(1, max_new_tokens - min(prefix_tokens, default=0)), seed=seed)
    t0 = time.monotonic()
    groups = engine.generate_ids(encoded, sampling) if encoded else []
    gen_s = time.monotonic() - t0
    texts = [rows[i]["completion"][:end] + c.text for (i, _, end), g in zip(todo, groups) for c in g]
    answers = [rows[i]["answer"] for i, _, _ in todo for _ in range(cfg.k)]
    verdicts, _ = pool.verify(texts, answers) if texts else ([], None)
    found: dict[tuple[int, int], tuple[float, str | None]] = {}
    for p, ((i, j, _), g) in enumerate(zip(todo, groups)):
        fits = [prefix_tokens[p] + len(c.token_ids) <= max_new_tokens for c in g]
        right = [v.label and ok for v, ok in zip(verdicts[p * cfg.k : (p + 1) * cfg.k], fits)]
        chosen = next((c.text for c, ok in zip(g, right) if ok and c.finish_reason == "stop"), None)
        found[(i, j)] = (sum(right) / cfg.k, chosen)
    q0: dict[str, tuple[float, str | None]] = {rows[i]["prompt_id"]: found[(i, j)] for i, j, _ in todo if j == -1}
    out = []
    for i, r in enumerate(rows):
        value0 = q0.get(r["prompt_id"])
        row = dict(r, step_q0=value0[0] if value0 else None, step_q0_continuation=value0[1] if value0 else None,
                   step_ends=None, step_values=None, step_samples=None, step_continuation=None)
        if _annotated(r, cfg):
            ends = step_ends(r["completion"], cfg.separator)
            known = [found.get((i, j)) for j in range(len(ends) - 1)]
            values, last = [], value0[0]
            for q in known:  # past --max-prefixes the last value carries over (no advantage of their own)
                last = q[0] if q else last
                values.append(last)
            row.update(step_ends=ends, step_values=values + [float(r["label"])],
                       step_samples=[cfg.k if q else 0 for q in known] + [0],
                       step_continuation=[q[1] if q else None for q in known] + [None])
        out.append(row)
    budget = {"continuation_samples": len(todo) * cfg.k, "prefixes": len(todo),
              "prompts_valued": len(q0), "continuation_tokens": sum(len(c.token_ids) for g in groups for c in g),
              "generate_seconds": gen_s}
    return out, budget


def _shards(rows: list[dict], size: int) -> list[list[int]]:
    """Row indices in shards of whole prompts (a prompt's value is estimated once), about ``size`` samples each."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["prompt_id"], []).append(i)
    shards, current = [], []
    for members in groups.values():
        current += members
        if len(current) >= size:
            shards.append(current)
            current = []
    return shards + ([current] if current else [])


def _shard_seed(seed: int, shard: int) -> int:
    """A sampling seed per shard, far from the rollout's (seed + 7919 k) and from the other shards'."""
    return int(hashlib.sha256(f"step-values-{seed}-{shard}".encode()).hexdigest()[:8], 16)


def _fingerprint(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["prompt_id"], r["sample_idx"], r["completion"], r["label"]]).encode())
    return h.hexdigest()[:16]


def _rollout_max_new_tokens(src: Path) -> int:
    settings = src / "settings.json" if src.is_dir() else src.parent / "settings.json"
    if settings.exists():
        value = json.loads(settings.read_text()).get("max_new_tokens")
        if isinstance(value, int) and value > 0:
            return value
    return 512


def estimate_step_values(cfg: StepValuesConfig, engine=None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the stage; returns the statistics written to ``stats.json``."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    with out_lock(out):
        src = Path(cfg.rollout)
        if not src.exists():
            raise DataError(f"--rollout {cfg.rollout}: no such file or folder")
        if src.resolve() == out.resolve():
            raise DataError(f"--out {cfg.out}: must differ from --rollout (the rollout's shards are read, not "
                            "rewritten)")
        rows = read_labeled(src)
        verifiers = sorted({str(r.get("verifier")) for r in rows})
        if len(verifiers) != 1 or verifiers[0] == "None":
            raise DataError(f"--rollout {cfg.rollout}: column 'verifier' must name one verifier for every row "
                            f"(found {', '.join(verifiers)}); the continuations are checked with it")
        max_new_tokens = cfg.max_new_tokens or _rollout_max_new_tokens(src)
        engine_kind = engine.name if engine is not None else cfg.engine
        if engine_kind == "auto":
            from negtune.rollout.engines import vllm_available

            engine_kind = "vllm" if vllm_available() else "hf"
        settings = {k: getattr(cfg, k) for k in _IDENTITY if k != "data_fingerprint"} | {
            "engine": engine_kind, "max_new_tokens": max_new_tokens, "data_fingerprint": _fingerprint(rows)}
        has_settings = check_settings(out, settings, "step values", "--rollout")
        shards = _shards(rows, cfg.shard_size)
        todo = [s for s in range(len(shards)) if not (out / f"shard-{s:05d}.parquet").exists()]
        built = False
        if todo and engine is None:
            engine = replace(cfg, engine=engine_kind).build_engine(cfg.model, cfg.adapter, cfg.seed)
            built = True
        if not has_settings:
            atomic_write_text(out / "settings.json", json.dumps(settings, indent=2))
        bar = tqdm(total=len(rows), initial=len(rows) - sum(len(shards[s]) for s in todo), unit="sample",
                   desc="step values", disable=not progress)
        try:
            if todo:
                with VerifierPool(verifiers[0], workers=cfg.verify_workers, timeout=cfg.verify_timeout) as pool:
                    for s in todo:
                        threads.adapt()
                        annotated, budget = _annotate([rows[i] for i in shards[s]], cfg, engine, pool,
                                                      _shard_seed(cfg.seed, s), max_new_tokens)
                        atomic_write_text(out / f"shard-{s:05d}.budget.json", json.dumps(budget))
                        write_shard(out / f"shard-{s:05d}.parquet", annotated)
                        bar.update(len(shards[s]))
        finally:
            bar.close()
            if built and hasattr(engine, "close"):
                engine.close()
        stats = summarize(read_labeled(out), out, len(shards))
        stats["settings"] = settings
        atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))
    return stats


def summarize(rows: list[dict], out: Path, n_shards: int) -> dict[str, Any]:
    """Budget and what the values found: pits per step index, the share of negatives' steps before their pit."""
    budget = Counter()
    for s in range(n_shards):
        path = out / f"shard-{s:05d}.budget.json"
        if path.exists():
            budget.update(json.loads(path.read_text()))
    annotated = [r for r in rows if r.get("step_values") is not None]
    negatives = [r for r in annotated if not r["label"]]
    pits = [first_pit(list(r["step_values"]), list(r["step_samples"])) for r in negatives]
    kept = sum(p for p in pits if p is not None)
    steps = sum(len(r["step_values"]) for r in negatives)
    return {
        "samples": len(rows), "annotated": len(annotated), "annotated_negatives": len(negatives),
        "continuation_samples": int(budget["continuation_samples"]), "prefixes": int(budget["prefixes"]),
        "prompts_valued": int(budget["prompts_valued"]),
        "continuation_tokens": int(budget["continuation_tokens"]),
        "generate_seconds": round(budget["generate_seconds"], 3),
        "mean_steps_per_annotated_sample": round(sum(len(r["step_values"]) for r in annotated) / len(annotated), 3)
        if annotated else None,
        "negatives_pit_histogram": {str(k): v for k, v in sorted(Counter(pits).items(),
                                                                 key=lambda kv: (kv[0] is None, kv[0] or 0))},
        "negative_steps_before_pit": round(kept / steps, 4) if steps else None,
    }


def print_summary(s: dict[str, Any], cfg: StepValuesConfig) -> None:
    """What ``negtune step-values`` prints: the budget spent, where the first pits fall, where the output is."""
    print(f"{s['annotated']} of {s['samples']} samples valued ({s['annotated_negatives']} negatives): "
          f"{s['prefixes']} prefixes x {cfg.k} = {s['continuation_samples']} continuations, "
          f"{s['continuation_tokens']} tokens in {s['generate_seconds']:.1f}s")
    if s["negative_steps_before_pit"] is not None:
        print(f"negatives' first pit (step index: count) {s['negatives_pit_histogram']}; "
              f"{s['negative_steps_before_pit']:.1%} of their steps come before it")
    print(f"annotated samples: {cfg.out}/shard-*.parquet (train with `negtune train step_pg --dataset {cfg.out}`), "
          f"stats: {cfg.out}/stats.json")
