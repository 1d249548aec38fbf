"""The ``negtune`` command line: ``data check | data make-arith | data make-tofu | tiny-model | rollout | train |
loop``."""

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
    info = create_tiny_model(args.out, task=args.task, seed=args.seed, warm=warm,
                             progress=lambda msg: print("  " + msg, flush=True))
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

    tiny = sub.add_parser("tiny-model", help="build the embedded tiny model (offline tokenizer + Qwen2)")
    tiny.add_argument("--task", default="arith", choices=["arith", "facts"])
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--difficulty", type=int, default=2, help="arithmetic difficulty of the warm start")
    tiny.add_argument("--time-budget", type=float, default=600.0, help="warm-start seconds at most (a cap)")
    tiny.add_argument("--max-steps", type=int, default=800, help="warm-start steps at most")
    tiny.add_argument("--target-accuracy", type=float, default=0.3, help="stop the warm start at this accuracy")
    tiny.set_defaults(func=_cmd_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
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
