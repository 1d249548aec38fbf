"""NPO with cached reference log-probs (negtune) vs a deep-copied reference model run every step
(open-unlearning's approach): same model, data, batch and optimizer; full-parameter training.

    python benchmarks/npo_memory.py [--hidden 512 --layers 8 --steps 12 --repeats 2]

Each variant runs in its own fresh process (so peak memory is its own), alternating cached/copy/cached/copy;
the script prints the median step time and the peak resident memory above the post-import baseline.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_variant(variant: str, hidden: int, layers: int, steps: int, batch: int) -> dict:
    import torch
    from transformers import TrainerCallback

    from negtune.data.tasks.facts import make_facts
    from negtune.losses import npo_loss, sequence_logps
    from negtune.models.tiny import TinySize, build_model, task_corpus, train_tokenizer
    from negtune.trainers import UnlearnConfig, UnlearnTrainer

    torch.set_num_threads(2)
    baseline = _rss_mb()
    tok = train_tokenizer(task_corpus()[:3000], vocab_size=1024)
    model = build_model(tok, TinySize(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=8,
                                      num_key_value_heads=8, intermediate_size=3 * hidden), seed=0)
    forget = make_facts(20)["forget10"] * 4

    class DeepCopyReferenceNPO(UnlearnTrainer):
        """open-unlearning's NPO: a frozen deep copy of the model, run on every forget batch."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.ref_copy = copy.deepcopy(self.model).eval().requires_grad_(False)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            kw = dict(input_ids=inputs["forget_input_ids"], attention_mask=inputs["forget_attention_mask"])
            logps, _ = sequence_logps(model(**kw).logits, inputs["forget_labels"])
            with torch.no_grad():
                ref, _ = sequence_logps(self.ref_copy(**kw).logits, inputs["forget_labels"])
            return npo_loss(logps, ref, self.args.beta)

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = UnlearnConfig(output_dir=tempfile.mkdtemp(), method="npo", max_steps=steps,
                         per_device_train_batch_size=batch, learning_rate=1e-5, use_cpu=True, save_strategy="no",
                         logging_steps=10_000, disable_tqdm=True, ref_cache_dir=tempfile.mkdtemp(), seed=0)
    cls = UnlearnTrainer if variant == "cached" else DeepCopyReferenceNPO
    t0 = time.perf_counter()
    trainer = cls(model, args, forget_dataset=forget, processing_class=tok, callbacks=[Timer()])
    setup_s = time.perf_counter() - t0
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "median_step_s": statistics.median(times[2:]), "setup_s": setup_s,
            "peak_above_baseline_mb": peak - baseline,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run_variant(a.variant, a.hidden, a.layers, a.steps, a.batch)))
        return
    results: dict[str, list[dict]] = {"cached": [], "deepcopy": []}
    for _ in range(a.repeats):
        for variant in ("cached", "deepcopy"):
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--hidden", str(a.hidden),
                                  "--layers", str(a.layers), "--steps", str(a.steps), "--batch", str(a.batch)],
                                 capture_output=True, text=True, check=True).stdout
            results[variant].append(json.loads(out.strip().splitlines()[-1]))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("median_step_s", "peak_above_baseline_mb", "setup_s")}
           for v, rs in results.items()}
    summary = {
        "benchmark": "npo_cached_reference_vs_deepcopy_reference",
        "parameters": results["cached"][0]["parameters"],
        "settings": vars(a) | {"variant": None},
        "cached": med["cached"], "deepcopy": med["deepcopy"],
        "step_time_ratio": round(med["cached"]["median_step_s"] / med["deepcopy"]["median_step_s"], 3),
        "peak_memory_ratio": round(med["cached"]["peak_above_baseline_mb"] / med["deepcopy"]["peak_above_baseline_mb"], 3),
        "targets": "step_time_ratio <= 0.75, peak_memory_ratio <= 0.6",
    }
    print(json.dumps(summary, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
