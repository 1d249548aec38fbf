"""HFEngine throughput against a bare ``model.generate`` loop: same model, prompts and sampling, one run.

    python benchmarks/rollout.py [--model DIR] [--prompts 64] [--n 4] [--max-new-tokens 96] [--repeats 3]

The two are interleaved (A B A B ...) so machine noise hits both alike; the ratio is what counts.
Without --model a tiny arithmetic model is built first (short warm start, so completions end naturally).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.prompts import format_prompt
from negtune.data.tasks import make_arith
from negtune.rollout.engines import HFEngine, SamplingConfig


def bare_loop(model, tok, prompts, sampling: SamplingConfig, batch_size: int) -> int:
    """What users write by hand: template, left-pad, generate, count tokens up to EOS."""
    tok.padding_side = "left"
    torch.manual_seed(sampling.seed)
    tokens = 0
    for start in range(0, len(prompts), batch_size):
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start : start + batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=sampling.max_new_tokens, do_sample=True,
                                 temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                                 num_return_sequences=sampling.n, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model_dir = args.model
    if model_dir is None:
        from negtune.models.tiny import WarmStartConfig, create_tiny_model

        model_dir = tempfile.mkdtemp(prefix="negtune-bench-")
        create_tiny_model(model_dir, warm=WarmStartConfig(time_budget_s=40, eval_every=10_000))
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
        n_tok = bare_loop(model, tok, prompts, sampling, args.batch_size)
        rates["bare_generate"].append(n_tok / (time.perf_counter() - t))
    engine_rate = statistics.median(rates["hf_engine"])
    bare_rate = statistics.median(rates["bare_generate"])
    result = {
        "benchmark": "rollout_hf_engine_vs_bare_generate",
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "settings": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "repeats": args.repeats},
        "hf_engine_tokens_per_s": round(engine_rate, 1),
        "bare_generate_tokens_per_s": round(bare_rate, 1),
        "engine_over_bare": round(engine_rate / bare_rate, 3),
        "overhead_pct": round(100 * (bare_rate / engine_rate - 1), 1),
        "target": "overhead <= 10% (engine_over_bare >= 0.91)",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
