"""The ``negtune`` command line: ``data check | data make-arith | data make-tofu | tiny-model | rollout | train |
loop | eval math | eval tofu | eval compare | demo | bench``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from negtune.data.io import DataError


def _cmd_data_check(args: argparse.Namespace) -> int:
    from negtune.data.loaders import load_records
    from negtune.data.schema import read_labeled

    path = Path(args.source)
    if args.format == "labeled" or (args.format is None and _looks_labeled(path)):
        rows = read_labeled(path)
        pos = sum(r["label"] for r in rows)
        print(f"format: labeled (negtune labeled-sample schema)\nrows: {len(rows)} "
              f"({pos} positive, {len(rows) - pos} negative, {len({r['prompt_id'] for r in rows})} prompts)")
        print(json.dumps(rows[0], indent=2, ensure_ascii=False, default=str))
        return 0
    if args.format == "tofu":
        from negtune.data.tofu import load_tofu_split

        rows = load_tofu_split(path.stem, path.parent)
        print(f"format: tofu (split {path.stem})\nrows: {len(rows)}")
        print(json.dumps(rows[0], indent=2, ensure_ascii=False))
        return 0
    loaded = load_records(
        args.source, format=args.format, split=args.split, config=args.config,
        prompt_column=args.prompt_column, answer_column=args.answer_column, id_column=args.id_column,
    )
    print(f"format: {loaded.format}\nsource: {loaded.source}\nrows: {len(loaded)}")
    if loaded.skipped:
        rows_list = ", ".join(str(i) for i, _ in loaded.skipped[:10])
        print(f"skipped: {len(loaded.skipped)} rows without a gold answer (rows {rows_list}"
              f"{', ...' if len(loaded.skipped) > 10 else ''}; first: {loaded.skipped[0][1]})")
    print(json.dumps(loaded.records[0], indent=2, ensure_ascii=False))
    return 0


def _looks_labeled(path: Path) -> bool:
    from negtune.data.io import read_rows

    if path.is_dir():
        shards = sorted(path.glob("*.parquet"))
        if not shards:
            return False
        path = shards[0]
    if not path.is_file() or path.suffix not in (".parquet", ".jsonl"):
        return False
    try:
        first = read_rows(path)[0]
    except DataError:
        return False
    return "completion" in first and "label" in first


def _cmd_make_arith(args: argparse.Namespace) -> int:
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith

    rows = make_arith(args.n, seed=args.seed, difficulty=args.difficulty)
    write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} arithmetic problems (difficulty {args.difficulty}, seed {args.seed}) to {args.out}")
    return 0


def _cmd_make_tofu(args: argparse.Namespace) -> int:
    from negtune.data.tasks import write_tofu_synthetic

    out = write_tofu_synthetic(args.out, n_authors=args.authors, seed=args.seed)
    files = sorted(p.name for p in out.glob("*.json"))
    print(f"wrote the synthetic TOFU-format set ({args.authors} authors) to {out}: {', '.join(files)}")
    return 0


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    warm = WarmStartConfig(seed=args.seed, difficulty=args.difficulty, time_budget_s=args.time_budget,
                           target_accuracy=args.target_accuracy, max_steps=args.max_steps)
    print(f"building a tiny Qwen2 model for task {args.task!r} in {args.out} ...", flush=True)
    info = create_tiny_model(args.out, task=args.task, seed=args.seed, warm=warm, facts_steps=args.facts_steps,
                             facts_without=args.without, progress=lambda msg: print("  " + msg, flush=True))
    print(f"saved {info['parameters']:,} parameters, vocab {info['vocab_size']} to {args.out}")
    if "greedy_accuracy" in info:
        print(f"warm start: greedy accuracy {info['greedy_accuracy']:.1%} on held-out arithmetic problems "
              f"after {info['warm_start_seconds']}s")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    from negtune.rollout.stage import RolloutConfig, print_summary, rollout_and_verify

    cfg = RolloutConfig(
        model=args.model, adapter=args.adapter, dataset=args.dataset, format=args.format, split=args.split,
        config=args.config, prompt_column=args.prompt_column, answer_column=args.answer_column, out=args.out,
        n=args.n, verifier=args.verifier, engine=args.engine, template=args.template,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
        stop=args.stop or [], logprobs=args.logprobs, limit=args.limit, shard_size=args.shard_size,
        batch_size=args.batch_size, verify_timeout=args.verify_timeout, verify_workers=args.verify_workers,
        dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, trust_remote_code=args.trust_remote_code,
    )
    _, stats = rollout_and_verify(cfg, progress=not args.no_progress)
    print_summary(stats, args.out)
    print(f"labeled samples: {args.out}/shard-*.parquet, stats: {args.out}/stats.json")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from negtune.train import main as train_main

    return train_main(args.train_args)


def _cmd_loop(args: argparse.Namespace) -> int:
    from negtune.loop import LoopConfig, run_loop

    cfg = LoopConfig(model=args.model, dataset=args.dataset, out=args.out, iterations=args.iterations,
                     method=args.method, n=args.n, verifier=args.verifier, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature, limit=args.limit, seed=args.seed, max_steps=args.max_steps,
                     learning_rate=args.learning_rate, batch_size=args.batch_size, lora=args.lora,
                     use_cpu=args.use_cpu)
    for rec in run_loop(cfg, progress=not args.no_progress):
        print(f"iteration {rec['iteration']}: rollout pass@1 {rec['rollout_pass@1']:.3f} "
              f"({rec['groups_mixed']} mixed groups) -> {rec['model']}"
              + (f" (training skipped: {rec['training_skipped']})" if rec.get("training_skipped") else ""))
    return 0


def _print_report(out: str) -> None:
    """An eval's report.md up to its settings block (the table and the notes)."""
    print((Path(out) / "report.md").read_text().split("\n## Settings")[0])


def _cmd_eval_math(args: argparse.Namespace) -> int:
    from negtune.evaluation.report import compare_runs

    if args.compare:
        print(compare_runs(args.compare[0], args.compare[1], args.out))
        return 0
    if not args.model or not args.out:
        raise DataError("negtune eval math: --model and --out are required (or --compare DIR1 DIR2)")
    from negtune.evaluation.math import MathEvalConfig, evaluate_math

    cfg = MathEvalConfig(
        model=args.model, adapter=args.adapter, out=args.out,
        benchmarks=[b.strip() for b in args.benchmarks.split(",") if b.strip()], n=args.n,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, template=args.template,
        verifier=args.verifier, seed=args.seed, limit=args.limit, engine=args.engine, batch_size=args.batch_size,
        dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, verify_timeout=args.verify_timeout,
        trust_remote_code=args.trust_remote_code,
    )
    results = evaluate_math(cfg, progress=not args.no_progress)
    _print_report(args.out)
    n = cfg.n
    print(f"average avg@{n} {results['average'][f'avg@{n}']:.3f}; results: {args.out}/results.json, "
          f"report: {args.out}/report.md")
    return 0


def _cmd_eval_tofu(args: argparse.Namespace) -> int:
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    cfg = TofuEvalConfig(model=args.model, adapter=args.adapter, out=args.out, forget_split=args.forget_split,
                         tofu_root=args.tofu_root, retain_log=args.retain_log, template=args.template,
                         system_prompt=args.system_prompt, batch_size=args.batch_size,
                         generation_batch_size=args.generation_batch_size,
                         max_new_tokens=args.max_new_tokens, limit=args.limit, dtype=args.dtype,
                         trust_remote_code=args.trust_remote_code)
    results = evaluate_tofu(cfg, progress=not args.no_progress)
    _print_report(args.out)
    m = results["metrics"]
    fq = "missing (no --retain-log)" if m["forget_quality"] is None else f"{m['forget_quality']:.4g}"
    print(f"forget quality {fq}, model utility {m['model_utility']:.4f}; eval log: {args.out}/eval_log.json")
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from negtune.evaluation.report import compare_runs

    print(compare_runs(args.run_a, args.run_b, args.out))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from negtune.demo import run_demo

    run_demo(out=args.out, quick=args.quick, seed=args.seed)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
    if not script.exists():
        raise DataError(f"{script}: not found; `negtune bench` runs from a source checkout of negtune")
    return subprocess.call([sys.executable, str(script), *args.bench_args])


def _add_eval_parsers(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a model: math benchmarks or TOFU").add_subparsers(
        dest="eval_command", required=True)
    m = ev.add_parser("math", help="avg@n / maj@n / pass@k on math benchmarks, with a report")
    m.add_argument("--model", help="hub id, local model folder or a LoRA output folder")
    m.add_argument("--adapter", help="PEFT adapter folder")
    m.add_argument("--benchmarks", default="gsm8k,math500,aime24,aime25,amc23,minerva,olympiadbench",
                   help="comma-separated benchmark names (gsm8k, math500, ...), data files or hub ids")
    m.add_argument("--out", help="output folder (results.json, samples.jsonl, report.md, plots/); reruns resume")
    m.add_argument("--n", type=int, default=4, help="samples per problem")
    m.add_argument("--temperature", type=float, default=0.6, help="0 = greedy")
    m.add_argument("--top-p", type=float, default=0.95)
    m.add_argument("--max-new-tokens", type=int, default=2048)
    m.add_argument("--template", default="qwen-math-cot", help="qwen-math-cot, plain, or a '{problem}' string")
    m.add_argument("--verifier", default="math")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--limit", type=int, help="first N problems of each benchmark")
    m.add_argument("--engine", default="auto", choices=["auto", "hf", "vllm"])
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--dtype", default="auto")
    m.add_argument("--tensor-parallel-size", type=int, default=1)
    m.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    m.add_argument("--verify-timeout", type=float, default=5.0)
    m.add_argument("--trust-remote-code", action="store_true")
    m.add_argument("--compare", nargs=2, metavar=("DIR1", "DIR2"),
                   help="instead of evaluating: put two eval folders side by side (written to --out if given)")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=_cmd_eval_math)

    t = ev.add_parser("tofu", help="TOFU unlearning metrics: probability, ROUGE-L, truth ratio, forget quality, "
                                   "model utility")
    t.add_argument("--model", required=True, help="hub id, local model folder or a LoRA output folder")
    t.add_argument("--adapter")
    t.add_argument("--out", required=True, help="output folder (eval_log.json, results.json, report.md)")
    t.add_argument("--forget-split", default="forget10", choices=["forget01", "forget05", "forget10"])
    t.add_argument("--tofu-root", help="folder of TOFU-format json files (default: the shared TOFU folder, else hub)")
    t.add_argument("--retain-log", help="eval_log.json of a retain-only model: gives forget quality")
    t.add_argument("--template", default="chat",
                   help="chat (the tokenizer's template), llama2, llama3, qa, none, or a '{question}' string")
    t.add_argument("--system-prompt")
    t.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    t.add_argument("--generation-batch-size", type=int, default=32, help="questions per generate call")
    t.add_argument("--max-new-tokens", type=int, default=200)
    t.add_argument("--limit", type=int, help="first N questions of each eval set")
    t.add_argument("--dtype", default="auto")
    t.add_argument("--trust-remote-code", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_eval_tofu)

    c = ev.add_parser("compare", help="two eval folders side by side (A, B, B - A)")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--out", help="also write compare.md and compare.png here")
    c.set_defaults(func=_cmd_eval_compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="negtune", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect and make datasets").add_subparsers(dest="data_command",
                                                                                    required=True)
    check = data.add_parser("check", help="load a file / benchmark name / hub id and show what negtune reads")
    check.add_argument("source", help="a file or folder, a benchmark name (gsm8k, math500, ...) or a hub id")
    check.add_argument("--format", help="force a format (default: detect); 'labeled' and 'tofu' also accepted")
    check.add_argument("--split", help="hub split")
    check.add_argument("--config", help="hub config name")
    check.add_argument("--prompt-column")
    check.add_argument("--answer-column")
    check.add_argument("--id-column")
    check.set_defaults(func=_cmd_data_check)

    arith = data.add_parser("make-arith", help="write synthetic arithmetic word problems (jsonl)")
    arith.add_argument("--out", required=True)
    arith.add_argument("--n", type=int, default=500)
    arith.add_argument("--difficulty", type=int, default=2)
    arith.add_argument("--seed", type=int, default=0)
    arith.set_defaults(func=_cmd_make_arith)

    tofu = data.add_parser("make-tofu", help="write the synthetic TOFU-format fictitious-facts set")
    tofu.add_argument("--out", required=True)
    tofu.add_argument("--authors", type=int, default=20)
    tofu.add_argument("--seed", type=int, default=0)
    tofu.set_defaults(func=_cmd_make_tofu)

    ro = sub.add_parser("rollout", help="sample completions, verify them, write a labeled dataset")
    ro.add_argument("--model", required=True, help="hub id or local model folder")
    ro.add_argument("--adapter", help="PEFT adapter folder")
    ro.add_argument("--dataset", required=True, help="file/folder, benchmark name (gsm8k, math500...) or hub id")
    ro.add_argument("--format", help="dataset format (default: detect)")
    ro.add_argument("--split")
    ro.add_argument("--config")
    ro.add_argument("--prompt-column")
    ro.add_argument("--answer-column")
    ro.add_argument("--out", required=True, help="output folder (parquet shards, stats.json); reruns resume")
    ro.add_argument("--n", type=int, default=8, help="samples per prompt")
    ro.add_argument("--verifier", default="math", help="math, gsm8k, numeric, exact, choice or module:function")
    ro.add_argument("--engine", default="auto", choices=["auto", "hf", "vllm"])
    ro.add_argument("--template", default="qwen-math-cot", help="qwen-math-cot, plain, or a '{problem}' string")
    ro.add_argument("--temperature", type=float, default=1.0)
    ro.add_argument("--top-p", type=float, default=1.0)
    ro.add_argument("--max-new-tokens", type=int, default=512)
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--stop", action="append", help="stop string (repeatable)")
    ro.add_argument("--logprobs", action="store_true", help="store the sampler's per-token log-probs")
    ro.add_argument("--limit", type=int, help="first N prompts only")
    ro.add_argument("--shard-size", type=int, default=64, help="prompts per shard (unit of resumption)")
    ro.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (hf engine)")
    ro.add_argument("--verify-timeout", type=float, default=5.0, help="seconds per sample")
    ro.add_argument("--verify-workers", type=int, help="verifier processes (default: all cores; 0: inline)")
    ro.add_argument("--dtype", default="auto")
    ro.add_argument("--tensor-parallel-size", type=int, default=1)
    ro.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ro.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off)")
    ro.add_argument("--no-progress", action="store_true")
    ro.set_defaults(func=_cmd_rollout)

    train = sub.add_parser("train", help="train a method: negtune train METHOD --config recipe.yaml [--field value]",
                           add_help=False)
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="METHOD and TRL-style arguments")
    train.set_defaults(func=_cmd_train)

    loop = sub.add_parser("loop", help="iterate rollout -> offline NFT/RFT for K iterations (resumable)")
    loop.add_argument("--model", required=True)
    loop.add_argument("--dataset", required=True)
    loop.add_argument("--out", required=True)
    loop.add_argument("--iterations", type=int, default=3)
    loop.add_argument("--method", default="nft", choices=["nft", "rft"])
    loop.add_argument("--n", type=int, default=8)
    loop.add_argument("--verifier", default="math")
    loop.add_argument("--max-new-tokens", type=int, default=512)
    loop.add_argument("--temperature", type=float, default=1.0)
    loop.add_argument("--limit", type=int)
    loop.add_argument("--seed", type=int, default=0)
    loop.add_argument("--max-steps", type=int, default=50, help="training steps per iteration")
    loop.add_argument("--learning-rate", type=float, default=1e-5)
    loop.add_argument("--batch-size", type=int, default=8)
    loop.add_argument("--lora", action="store_true", help="train a LoRA adapter per iteration (merged after)")
    loop.add_argument("--use-cpu", action="store_true")
    loop.add_argument("--no-progress", action="store_true")
    loop.set_defaults(func=_cmd_loop)

    _add_eval_parsers(sub)

    demo = sub.add_parser("demo", help="the whole pipeline on the embedded tiny model and tasks (CPU, offline)")
    demo.add_argument("--out", default="demo_out", help="output folder (report.md, models, evals); reruns resume")
    demo.add_argument("--quick", action="store_true", help="a smaller run (about 2 minutes; CI uses it)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="run every benchmark and rewrite benchmarks/RESULTS.md "
                                         "(benchmarks/run_all.py; --quick, --only NAMES)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_cmd_bench)

    tiny = sub.add_parser("tiny-model", help="build the embedded tiny model (offline tokenizer + Qwen2)")
    tiny.add_argument("--task", default="arith", choices=["arith", "facts"])
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--difficulty", type=int, default=2, help="arithmetic difficulty of the warm start")
    tiny.add_argument("--time-budget", type=float, default=600.0, help="warm-start seconds at most (a cap)")
    tiny.add_argument("--max-steps", type=int, default=800, help="warm-start steps at most")
    tiny.add_argument("--target-accuracy", type=float, default=0.3, help="stop the warm start at this accuracy")
    tiny.add_argument("--facts-steps", type=int, default=600, help="facts task: fine-tuning steps")
    tiny.add_argument("--without", help="facts task: leave this forget split out (a TOFU retain-model analogue)")
    tiny.set_defaults(func=_cmd_tiny_model)
    return parser


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
        return args.func(args)
    except (DataError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"negtune: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
