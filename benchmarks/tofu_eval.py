"""TOFU evaluation: negtune's batched scorer vs a per-example loop (the usual implementation: one forward pass
per (question, answer) pair, one ``generate`` call per question), same model and data, one run.

    python benchmarks/tofu_eval.py [--model DIR] [--tofu-root DIR] [--limit N] [--batch-size 8] [--json OUT]

Defaults: a tiny model fine-tuned on the synthetic TOFU-format set and that set (built on the fly);
``--tofu-root ../shared/data/tofu`` with a model of your own measures the real files. Prints both wall times,
the speed-up, and the largest difference between the two metric tables (target: >= 3x, identical metrics).
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

from common import Run, parser, section, write_result

RUNS = (Run("tofu_eval", full=("--batch-size", "8", "--hidden", "512", "--layers", "8", "--max-new-tokens", "48"),
            quick=("--batch-size", "8", "--limit", "8", "--max-new-tokens", "48")),)


def results_section(r: dict) -> str:
    return section(
        "TOFU eval: batched vs a per-example loop (`benchmarks/tofu_eval.py`)",
        f"{r['questions']} questions (forget, retain, real-author and world-fact analogues), "
        f"{r['parameters']:,}-parameter model, batch {r['batch_size']} questions per forward pass (all their "
        f"answers at once), {r.get('generation_batch_size', r['batch_size'])} per generate call; the loop "
        "runs one forward pass per answer and one generate call per question.",
        ["batched (s)", "per-example loop (s)", "speed-up", "largest metric difference",
         "identical greedy generations", "target"],
        [[r["batched_seconds"], r["per_example_seconds"], f"**{r['speedup']}x**", f"{r['max_metric_difference']:.1e}",
          r["identical_generations"], ">= 3x, identical metrics"]])


def per_example_split(scorer, rows: list[dict], split: str) -> dict[str, list]:
    """The usual loop: every answer scored in its own forward pass, every question generated alone."""
    import numpy as np

    from negtune.evaluation.tofu import normalized_probability, rouge_l_recall, truth_ratio

    has_para = split in ("forget", "retain")
    answer_nll, para_nll, pert_nll, generations = [], [], [], []
    for row in rows:
        def one(text: str, question: str = row["question"]) -> float:  # the same tokens the batched path scores
            return scorer.sequence_nll([scorer.encode(question, text)])[0]

        answer_nll.append(one(row["answer"]))
        if has_para:
            para_nll.append(one(row["paraphrased_answer"]))
        pert_nll.append([one(p) for p in row["perturbed_answer"]])
        generations.append(scorer.greedy([row["question"]])[0])
    if has_para:
        prob, tr = np.exp(-np.asarray(answer_nll)).tolist(), truth_ratio(para_nll, pert_nll).tolist()
    else:
        prob, tr = normalized_probability(answer_nll, pert_nll).tolist(), truth_ratio(answer_nll, pert_nll).tolist()
    return {"prob": prob, "rouge": rouge_l_recall(generations, [r["answer"] for r in rows]), "truth_ratio": tr,
            "generation": generations}


def main(argv: list[str] | None = None) -> dict:
    ap = parser(__doc__)
    ap.add_argument("--model", help="model folder (default: build the tiny TOFU-fine-tuned model)")
    ap.add_argument("--hidden", type=int, help="instead: a randomly initialised Qwen2 of this width (with "
                    "--layers), so compute, not Python overhead, dominates; its answers run to --max-new-tokens")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--tofu-root", help="TOFU-format folder (default: write the synthetic set)")
    ap.add_argument("--forget-split", default="forget10")
    ap.add_argument("--limit", type=int, help="first N questions of each eval set")
    ap.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    ap.add_argument("--generation-batch-size", type=int, default=32, help="questions per generate call")
    ap.add_argument("--max-new-tokens", type=int, default=200)
    args = ap.parse_args(argv)

    import torch

    from negtune.evaluation.tofu import SPLITS, TofuScorer, aggregate, load_eval_sets, score_split
    from negtune.models.loading import load_model_and_tokenizer

    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="tofu-eval-bench-"))
    model_dir = args.model
    if model_dir is None and args.hidden:
        from negtune.models.tiny import TinySize, build_model, task_corpus, train_tokenizer

        model_dir = str(tmp / f"qwen2-h{args.hidden}-l{args.layers}")
        tok = train_tokenizer(task_corpus(0))
        heads = max(1, args.hidden // 64)
        build_model(tok, TinySize(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, intermediate_size=3 * args.hidden)).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    if model_dir is None:
        from negtune.models.tiny import create_tiny_model

        model_dir = str(tmp / "tiny-facts")
        print("building the tiny TOFU-fine-tuned model ...", flush=True)
        create_tiny_model(model_dir, task="facts", seed=0, facts_steps=300)
    root = args.tofu_root
    if root is None:
        from negtune.data.tasks.facts import write_tofu_synthetic

        root = str(write_tofu_synthetic(tmp / "tofu"))
    sets = load_eval_sets(args.forget_split, root, args.limit)
    model, tok = load_model_and_tokenizer(model_dir, dtype="float32")
    scorer = TofuScorer(model, tok, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        generation_batch_size=args.generation_batch_size)
    scorer.sequence_nll([scorer.encode("warm up", "up")])  # first-call costs out of timing

    timings, tables, per = {}, {}, {}
    for name, fn in (("batched", lambda rows, s: score_split(scorer, rows, s)), ("per_example", lambda rows, s:
                     per_example_split(scorer, rows, s))):
        t0 = time.perf_counter()
        per[name] = {s: fn(sets[s], s) for s in SPLITS}
        timings[name] = time.perf_counter() - t0
        tables[name] = aggregate(per[name])
    diffs = {k: abs(tables["batched"][k] - tables["per_example"][k]) for k in tables["batched"]}
    same_generations = sum(a == b for s in SPLITS
                           for a, b in zip(per["batched"][s]["generation"], per["per_example"][s]["generation"]))
    n_questions = sum(len(v) for v in sets.values())
    result = {
        "questions": n_questions, "batch_size": args.batch_size, "generation_batch_size": args.generation_batch_size, "model": model_dir, "tofu_root": root,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batched_seconds": round(timings["batched"], 2), "per_example_seconds": round(timings["per_example"], 2),
        "speedup": round(timings["per_example"] / timings["batched"], 2),
        "max_metric_difference": max(diffs.values()), "identical_generations": f"{same_generations}/{n_questions}",
        "metrics_batched": tables["batched"], "metrics_per_example": tables["per_example"],
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    print(f"TOFU eval on {n_questions} questions ({result['parameters']:,}-parameter model, batch "
          f"{args.batch_size}): batched {result['batched_seconds']} s, per-example {result['per_example_seconds']} "
          f"s -> speed-up {result['speedup']}x (target >= 3x)")
    print(f"largest metric difference {result['max_metric_difference']:.2e}; identical greedy generations "
          f"{result['identical_generations']}")
    for k in tables["batched"]:
        print(f"  {k:26s} {tables['batched'][k]:.6f}  {tables['per_example'][k]:.6f}")
    write_result(result, args.json, echo=False)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
