"""What the benchmark scripts share: their spec for ``run_all.py``, their arguments and JSON output, and the
tiny arithmetic model and prompt set several of them build.

Every benchmark script in this folder defines, at module level (cheap to import: heavy imports stay inside
functions),

- ``RUNS``: a tuple of :class:`Run`, one per section of RESULTS.md it writes (one script may measure several
  settings, e.g. ``npo_memory.py``), with the arguments of the reported figures and of ``--quick``;
- ``results_section(result: dict) -> str``: the Markdown section (heading, text, table: :func:`section`) for
  the JSON it wrote (a result made by :func:`skipped` included).

Scripts import their sibling modules by bare name (``from common import ...``, ``from step_timer import
StepTimer``): the script's folder is on ``sys.path`` when Python runs a script, and the tests put it there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Run:
    """One section of RESULTS.md (``<!-- bench:NAME -->``, ``negtune bench --only NAME``): the script run with
    ``full`` arguments (the figures RESULTS.md reports) or ``quick`` ones (``--quick``: a smoke test)."""

    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the script's docstring as help and ``--json PATH`` (where run_all.py reads the
    figures)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the figures here (JSON)")
    return ap


def write_result(result: dict, path: str | None, echo: bool = True) -> None:
    """Print the figures (``echo``) and write them to ``path`` (the ``--json`` argument) when given."""
    text = json.dumps(result, indent=2)
    if echo:
        print(text, flush=True)
    if path:
        Path(path).write_text(text)


def skipped(reason: str, **extra) -> dict:
    """The result of a benchmark that cannot run here (e.g. no CUDA device): its section says why, and
    run_all.py keeps figures an earlier run wrote instead of replacing them."""
    return {"skipped": reason, **extra}


def arith_model(model_dir: str | None, warm_s: float | None = None) -> str:
    """``model_dir``, or the tiny arithmetic model built in a temporary folder: the full warm start, or one
    capped at ``warm_s`` seconds (completions then end naturally, accuracy does not matter)."""
    if model_dir is not None:
        return model_dir
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    model_dir = tempfile.mkdtemp(prefix="negtune-bench-")
    warm = None if warm_s is None else WarmStartConfig(time_budget_s=warm_s, eval_every=10_000)
    create_tiny_model(model_dir, warm=warm)
    return model_dir


def arith_prompt_dataset(n: int, seed: int, **kw):
    """A prompt dataset (``negtune.trainers.prompt_dataset``) of ``n`` arithmetic problems (``make_arith``)."""
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith
    from negtune.trainers import prompt_dataset

    path = Path(tempfile.mkdtemp(prefix="negtune-bench-")) / "arith.jsonl"
    write_jsonl(path, make_arith(n, seed=seed, **kw))
    return prompt_dataset(str(path))


def cpu_online_config(method: str, **kw):
    """``online_config(method, ...)`` for a quiet CPU run: fp32, no checkpoints, logs or progress bar."""
    from negtune.trainers import online_config

    quiet = dict(output_dir=tempfile.mkdtemp(prefix="negtune-bench-"), use_cpu=True, bf16=False,
                 gradient_checkpointing=False, report_to="none", save_strategy="no", disable_tqdm=True,
                 logging_steps=10_000)
    return online_config(method, **(quiet | kw))


def tune_learning_rates(names, lrs: list[float], run, score) -> tuple[dict, dict, list]:
    """The equal tuning rule of the comparisons: every name runs every learning rate of the grid on the tuning
    seed (``run(name, lr)`` -> a result) and keeps the best by ``score(result)`` (higher is better).
    Returns (scores per name and rate, for the report; the chosen rate per name; every tuning result)."""
    tuning, chosen, results = {}, {}, []
    for name in names:
        tuned = {lr: run(name, lr) for lr in lrs}
        results += tuned.values()
        scores = {lr: score(r) for lr, r in tuned.items()}
        tuning[name] = {f"{lr:g}": round(v, 4) for lr, v in scores.items()}
        chosen[name] = max(scores, key=scores.get)
    return tuning, chosen, results


def add_comparison_args(ap: argparse.ArgumentParser, variants, lrs: str, compare: str, work: str) -> None:
    """The flags of a tuned comparison of variants on the tiny arithmetic model (``negatives_nat``,
    ``negatives_token_forget``, ``negatives_negassist``): seeds, tuning seed and grid, steps, batch, held-out
    problems, which variants and differences, a smoke-size base, the work folder."""
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--tune-seed", type=int, default=100)
    ap.add_argument("--lrs", default=lrs)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--methods", default=",".join(variants))
    ap.add_argument("--compare", default=compare, help="A:B pairs: the differences reported are A - B")
    ap.add_argument("--warm-s", type=float, help="cap the base model's warm start (smoke runs)")
    ap.add_argument("--base", help="an arithmetic model folder to start from instead (smoke runs)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / work))


def comparison_plan(ap: argparse.ArgumentParser, a, variants) -> tuple[list[int], list[str], list[list[str]], list[float]]:
    """(evaluation seeds, variants, A:B pairs, learning rates) from :func:`add_comparison_args`' flags, checked."""
    seeds = [int(s) for s in a.seeds.split(",")]
    chosen = a.methods.split(",")
    pairs = [p.split(":") for p in a.compare.split(",") if p]
    if a.tune_seed in seeds or any(v not in variants for v in chosen) or \
            any(len(p) != 2 or not set(p) <= set(chosen) for p in pairs):
        ap.error(f"--methods from {', '.join(variants)}, --compare A:B of those, --tune-seed not an evaluation seed")
    return seeds, chosen, pairs, [float(x) for x in a.lrs.split(",")]


def comparison_base(a) -> str:
    """The model a comparison starts from: ``--base``, else the warm-started arithmetic model shared with
    ``negatives_rlvr.py`` (built once; with ``--warm-s``, a capped one under ``--work``)."""
    if a.base:
        return a.base
    from negatives_rlvr import base_model

    return base_model(Path.home() / ".cache" / "negtune" / "negatives_rlvr" if a.warm_s is None else Path(a.work),
                      a.warm_s)


def comparison_work(a, name: str) -> Path:
    """A comparison's folder under ``--work``: ``name`` (the settings its runs depend on), with ``-smoke`` when the
    base is capped (``--warm-s``) or given (``--base``), so smoke runs never reuse full ones; created, and negtune's
    thread policy set for the runs."""
    from negtune.utils import threads

    threads.configure()
    work = Path(a.work) / (name + ("-smoke" if a.warm_s or a.base else ""))
    work.mkdir(parents=True, exist_ok=True)
    return work


def tuned_runs(variants, lrs: list[float], seeds: list[int], tune_seed: int, run) -> tuple[dict, dict, list, dict]:
    """Every variant tuned on ``tune_seed`` by avg@8 (:func:`tune_learning_rates`), then run at its chosen rate on
    every evaluation seed: (tuning scores, chosen rates, tuning results, runs per variant); ``run(v, lr, seed)``."""
    tuning, chosen, tuned = tune_learning_rates(variants, lrs, lambda v, lr: run(v, lr, tune_seed),
                                                lambda r: r["eval"]["avg@8"])
    return tuning, chosen, tuned, {v: [run(v, chosen[v], s) for s in seeds] for v in variants}


def avg8_summary(runs: dict[str, list[dict]], chosen: dict[str, float]) -> dict[str, dict]:
    """Per variant: its rate, avg@8 and pass@8 per seed and their means (runs carry ``eval`` results)."""
    import statistics

    return {v: {"lr": chosen[v], "per_seed": [r["eval"]["avg@8"] for r in rs],
                "mean": statistics.fmean(r["eval"]["avg@8"] for r in rs),
                "pass8_per_seed": [r["eval"]["pass@8"] for r in rs],
                "mean_pass8": statistics.fmean(r["eval"]["pass@8"] for r in rs)} for v, rs in runs.items()}


def difference_bullets(r: dict, metric: str = "avg@8") -> list[str]:
    """One bullet per reported difference A - B: the interval, the verdict, on how many seeds A was ahead."""
    from negtune.evaluation.stats import format_difference

    lines = []
    for key, d in r["differences"].items():
        a, b = key.split(":")
        verdict = "the interval excludes 0" if d["excludes_zero"] else "the interval includes 0: no claim"
        ahead = sum(x > y for x, y in zip(r["methods"][a]["per_seed"], r["methods"][b]["per_seed"]))
        lines.append(f"- **{a} - {b}, {metric}: {format_difference(d)}** ({verdict}; {a} ahead on {ahead} of "
                     f"{len(r['seeds'])} seeds)")
    return lines


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; an empty cell is written ``| |``."""
    line = lambda cells: "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"  # noqa: E731
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def finished_run(run: Path, eval_tag: str, evaluate_kept) -> dict | None:
    """A run's record on the eval set ``eval_tag`` (``run{eval_tag}.json``) when written. A run trained and evaluated
    on another set gets its record with ``"eval": evaluate_kept(run / f"eval{eval_tag}")``: the kept model is
    evaluated, never trained again. None when the run was never trained."""
    done = run / f"run{eval_tag}.json"
    if done.exists():
        return json.loads(done.read_text())
    trained = sorted(run.glob("run*.json"))
    if not trained:
        return None
    result = {**json.loads(trained[0].read_text()), "eval": evaluate_kept(run / f"eval{eval_tag}")}
    done.write_text(json.dumps(result, indent=1))
    return result


def section(heading: str, text: str, header: list[str] | None = None, rows: tuple | list = (), after: str = "") -> str:
    """A results section: ``## heading``, a paragraph, a table (when ``header``) and what follows it."""
    parts = [f"## {heading}", text] + ([table(header, rows)] if header else []) + ([after] if after else [])
    return "\n\n".join(parts)


def bare_loop(model, tok, prompts, sampling, batch_size: int) -> tuple[int, int]:
    """What users write by hand: template, left-pad, generate, count tokens up to EOS. (tokens, completions)"""
    import torch

    tok.padding_side = "left"
    torch.manual_seed(sampling.seed)
    tokens = rows = 0
    eos = {tok.eos_token_id, *([model.generation_config.eos_token_id]
                               if isinstance(model.generation_config.eos_token_id, int)
                               else model.generation_config.eos_token_id or [])}
    for start in range(0, len(prompts), batch_size):
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start : start + batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=sampling.max_new_tokens, do_sample=True,
                                 temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                                 num_return_sequences=sampling.n, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in eos]
            tokens += ends[0] + 1 if ends else len(row)
            rows += 1
    return tokens, rows


def completion_perplexity(model, tok, rows: list[dict]) -> float:
    """exp(mean NLL of the completion tokens) of prompt/completion rows under ``model``, one row at a time
    (no padding), the tokens as ``encode_prompt_completion`` lays them out."""
    import math

    import torch

    from negtune.data.prompts import encode_prompt_completion

    nll, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in (encode_prompt_completion(tok, r["prompt"], r["completion"]) for r in rows):
            logits = model(torch.tensor([ids])).logits[0, :-1]
            target = torch.tensor(labels[1:])
            keep = target != -100
            nll += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    return math.exp(nll / count)
