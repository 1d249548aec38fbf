"""Math benchmark evaluation: n samples per problem through the rollout engines and verifiers, then
avg@n / maj@n / pass@k per benchmark, ``results.json``, ``samples.jsonl`` and a Markdown report with plots.

Each benchmark is a rollout-and-verify run into ``OUT/rollouts/<benchmark>`` (resumable shards), so an
interrupted evaluation picks up where it stopped and the raw labeled samples stay available.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negtune.data.io import DataError, atomic_write_text, out_lock, write_jsonl
from negtune.data.paths import BENCHMARKS
from negtune.evaluation.metrics import benchmark_metrics, pass_at_k, problem_summary
from negtune.models.loading import in_memory_record, scored_model
from negtune.rollout.engines.options import EngineOptions

__all__ = ["MathEvalConfig", "evaluate_math", "pass_at_k"]

DEFAULT_BENCHMARKS = ("gsm8k", "math500", "aime24", "aime25", "amc23", "minerva", "olympiadbench")


@dataclass
class MathEvalConfig(EngineOptions):
    """``negtune eval math`` settings (its flags are these fields). Defaults: the lighteval/open-r1 sampling."""

    model: str = field(metadata={"help": "hub id, local model folder or a LoRA output folder"})
    out: str = field(metadata={"help": "output folder (results.json, samples.jsonl, report.md, plots/); reruns "
                                       "resume"})
    benchmarks: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS), metadata={
        "help": "benchmark names (gsm8k, math500, ...), data files or hub ids; space- or comma-separated"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    n: int = field(default=4, metadata={"help": "samples per problem"})
    temperature: float = field(default=0.6, metadata={"help": "0 = greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_new_tokens: int = field(default=2048, metadata={"help": "tokens per completion at most"})
    template: str = field(default="qwen-math-cot", metadata={
        "help": "qwen-math-cot, plain, or a string containing '{problem}'"})
    marker: str = field(default="auto", metadata={
        "help": "text appended to every prompt: 'auto' = the quality marker saved with the model (NAT), 'none', "
                "or the text"})
    verifier: str = field(default="math", metadata={"help": "math, gsm8k, numeric, exact, choice or module:function"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    limit: int | None = field(default=None, metadata={"help": "first N problems of each benchmark (quick checks)"})
    verify_timeout: float = field(default=5.0, metadata={"help": "verifier seconds per sample"})
    verify_workers: int | None = field(default=None, metadata={"help": "verifier processes (default: all cores)"})
    checkpoints: bool = field(default=False, metadata={
        "help": "--model is a training output folder: evaluate each checkpoint-N in it and its final model, into "
                "OUT/step-N, and write the curve (OUT/curve.json, curve.md, curve.png)"})

    def __post_init__(self):
        if isinstance(self.benchmarks, str):
            self.benchmarks = [self.benchmarks]
        self.benchmarks = [b.strip() for item in self.benchmarks for b in item.split(",") if b.strip()]
        from negtune.rollout.stage import check_run_values

        check_run_values(self)


def benchmark_name(source: str) -> str:
    """A benchmark's name in reports: the registry name, or a data file's stem."""
    return source if source in BENCHMARKS else Path(source).stem or source


def _problems(rows: list[dict], cfg: MathEvalConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """Per problem: its ``samples.jsonl`` record and its :func:`problem_summary` (for the metrics); and the
    vote statistics. maj@n counts answers the run's verifier finds equal as one vote
    (:mod:`negtune.evaluation.equivalence`: with math-verify, ``1/2`` and ``\\frac{1}{2}`` are one answer)."""
    from negtune.evaluation.equivalence import vote_clusters

    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["prompt_id"], []).append(r)
    problems = [sorted(samples, key=lambda s: s["sample_idx"]) for samples in groups.values()]
    clusters, vote_stats = vote_clusters([[s["extracted"] for s in samples] for samples in problems], cfg.verifier,
                                         cfg.verify_workers, cfg.verify_timeout)
    records, summaries = [], []
    for samples, cluster in zip(problems, clusters):
        summary = problem_summary(samples, cluster)
        meta = json.loads(samples[0]["meta"]) if samples[0].get("meta") else {}
        summaries.append(summary)
        records.append({
            "id": meta.get("id"), "prompt": samples[0]["prompt"], "answer": samples[0]["answer"],
            "completions": [s["completion"] for s in samples], "extracted": [s["extracted"] for s in samples],
            "correct": [bool(s["label"]) for s in samples], "reward": [s["reward"] for s in samples],
            "finish_reason": [s["finish_reason"] for s in samples], "answer_cluster": cluster,
            "majority_answer": summary["majority_answer"], "majority_correct": summary["majority_correct"],
        })
    return records, summaries, vote_stats


def evaluate_math(cfg: MathEvalConfig, engine=None, progress: bool = True, *, model=None,
                  tokenizer=None) -> dict[str, Any]:
    """Run (or resume) the evaluation and write its outputs; returns the ``results.json`` content.

    The model is ``cfg.model`` (and ``cfg.adapter``), loaded by ``cfg.engine``; or an ``engine`` already built; or
    ``model=`` with its ``tokenizer=``, a transformers or PEFT model in memory (a trainer's, mid-experiment),
    sampled with ``generate`` as it is (its training mode restored after). An in-memory model's rollouts are keyed
    by a hash of its weights, so a rerun into the same ``out`` resumes only for the same weights."""
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    if cfg.checkpoints:
        raise ValueError("cfg.checkpoints is set: negtune.evaluation.evaluate_checkpoints(cfg) evaluates a run's "
                         "checkpoints; evaluate_math evaluates one model")
    if not cfg.benchmarks:
        raise DataError("--benchmarks is empty; name at least one (e.g. gsm8k,math500)")
    names = [benchmark_name(b) for b in cfg.benchmarks]
    if len(set(names)) != len(names):
        raise DataError(f"--benchmarks names a benchmark twice: {', '.join(cfg.benchmarks)}")
    for source in cfg.benchmarks:
        if source not in BENCHMARKS and not Path(source).exists() and "/" not in source:
            raise DataError(f"--benchmarks: {source!r} is neither a known benchmark ({', '.join(BENCHMARKS)}), "
                            "nor an existing file, nor a hub id")
    source_model, source_adapter = cfg.model, cfg.adapter
    if model is not None:
        if engine is not None or tokenizer is None:
            raise ValueError("evaluate_math(model=...): pass its tokenizer too (tokenizer=...), and no engine "
                             "(model= is sampled with an HF engine built on it)")
        from negtune.trainers.reference import model_fingerprint

        record = in_memory_record(model)  # what the results name, and where a saved marker would be
        origin = record["base_model"]
        source_model, source_adapter = f"{origin} (in memory, weights {model_fingerprint(model)[:16]})", None
    with out_lock(cfg.out) as out:
        built = engine is None and model is None
        if built:
            engine = cfg.build_engine(cfg.model, cfg.adapter, cfg.seed)
        elif model is not None:
            from negtune.rollout.engines.hf import HFEngine

            engine = HFEngine(model, tokenizer, batch_size=cfg.batch_size)
        from negtune.data.prompts import resolve_marker

        # once: every benchmark's prompts end with it
        if model is None:
            marker = resolve_marker(cfg.marker, cfg.model, cfg.adapter)
        elif cfg.marker == "auto":  # the marker saved where the in-memory model was loaded from, if anywhere
            marker = resolve_marker("auto", origin) if origin else None
        else:
            marker = resolve_marker(cfg.marker, "")
        scored = record if model is not None else scored_model(cfg.model, cfg.adapter)
        settings = asdict(cfg) | scored | {"engine": engine.name, "marker_text": marker}
        results: dict[str, Any] = {"settings": settings, "benchmarks": {}}
        all_samples = []
        try:
            for source, name in zip(cfg.benchmarks, names):
                t0 = time.monotonic()
                rcfg = RolloutConfig(model=source_model, adapter=source_adapter, dataset=source,
                                     out=str(out / "rollouts" / name), n=cfg.n, verifier=cfg.verifier,
                                     template=cfg.template, marker=marker or "none", temperature=cfg.temperature, top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, limit=cfg.limit,
                                     batch_size=cfg.batch_size, verify_timeout=cfg.verify_timeout,
                                     verify_workers=cfg.verify_workers, engine=engine.name)
                dataset, stats = rollout_and_verify(rcfg, engine=engine, progress=progress)
                records, summaries, vote_stats = _problems(dataset.to_list(), cfg)
                metrics = benchmark_metrics(summaries) | vote_stats
                metrics.update(source=source, seconds=round(time.monotonic() - t0, 1),
                               tokens_per_second=stats.get("tokens_per_second"),
                               skipped_rows=stats.get("skipped_rows", 0),
                               too_long_prompts=stats.get("too_long_prompts", 0),
                               duplicate_prompts=stats.get("duplicate_prompts", 0))
                results["benchmarks"][name] = metrics
                all_samples += [{"benchmark": name, **r} for r in records]
        finally:
            if built and hasattr(engine, "close"):
                engine.close()
        n = cfg.n
        per_bench = results["benchmarks"].values()
        results["average"] = {f"avg@{n}": sum(m[f"avg@{n}"] for m in per_bench) / len(per_bench),
                              f"maj@{n}": sum(m[f"maj@{n}"] for m in per_bench) / len(per_bench)}
        write_jsonl(out / "samples.jsonl", all_samples)
        atomic_write_text(out / "results.json", json.dumps(results, indent=2))
        from negtune.evaluation.report import write_math_report

        write_math_report(results, out)
    return results
