"""HFEngine throughput against a bare ``model.generate`` loop: same model, prompts and sampling, one run.

    python benchmarks/rollout.py [--model DIR] [--prompts 64] [--n 4] [--max-new-tokens 96] [--repeats 3]

The two are interleaved (A B A B ...) so machine noise hits both alike; the ratio is what counts.
Without --model a tiny arithmetic model is built first (short warm start, so completions end naturally).
"""

from __future__ import annotations

import platform
import statistics
import time

from common import Run, arith_model, bare_loop, parser, section, write_result

RUNS = (Run("rollout", full=("--prompts", "64", "--n", "4", "--repeats", "3"),
            quick=("--prompts", "16", "--n", "2", "--repeats", "1", "--max-new-tokens", "48")),)


def results_section(r: dict) -> str:
    s = r["settings"]
    return section(
        "Rollout: HFEngine vs a bare `model.generate` loop (`benchmarks/rollout.py`)",
        f"Tiny arithmetic model, {s['prompts']} prompts x n={s['n']}, max_new_tokens {s['max_new_tokens']}, batch "
        f"{s['batch_size']} prompts, median of {s['repeats']} interleaved repeats.",
        ["HFEngine tokens/s", "bare generate tokens/s", "engine / bare", "target"],
        [[r["hf_engine_tokens_per_s"], r["bare_generate_tokens_per_s"], f"**{r['engine_over_bare']}**",
          "overhead <= 10% (>= 0.91)"]],
        "HFEngine sorts prompts by length before batching, so its batches carry less padding.")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.data.prompts import format_prompt
    from negtune.data.tasks import make_arith
    from negtune.rollout.engines import HFEngine, SamplingConfig

    torch.set_num_threads(2)
    model_dir = arith_model(args.model, warm_s=40)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [format_prompt(r["prompt"]) for r in make_arith(args.prompts, seed=123)]
    sampling = SamplingConfig(n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    engine = HFEngine(model, tok, batch_size=args.batch_size)

    rates = {"hf_engine": [], "bare_generate": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        out = engine.generate(prompts, sampling)
        n_tok = sum(len(c.token_ids) for g in out for c in g)
        rates["hf_engine"].append(n_tok / (time.perf_counter() - t))
        t = time.perf_counter()
        n_tok = bare_loop(model, tok, prompts, sampling, args.batch_size)[0]
        rates["bare_generate"].append(n_tok / (time.perf_counter() - t))
    engine_rate = statistics.median(rates["hf_engine"])
    bare_rate = statistics.median(rates["bare_generate"])
    write_result({
        "benchmark": "rollout_hf_engine_vs_bare_generate",
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "settings": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "repeats": args.repeats},
        "hf_engine_tokens_per_s": round(engine_rate, 1),
        "bare_generate_tokens_per_s": round(bare_rate, 1),
        "engine_over_bare": round(engine_rate / bare_rate, 3),
        "overhead_pct": round(100 * (bare_rate / engine_rate - 1), 1),
        "target": "overhead <= 10% (engine_over_bare >= 0.91)",
    }, args.json)


if __name__ == "__main__":
    main()
