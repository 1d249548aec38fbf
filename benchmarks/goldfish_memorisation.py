"""Does the Goldfish loss stop verbatim memorisation at little cost? Standard SFT vs Goldfish SFT, seeds and CIs.

    python benchmarks/goldfish_memorisation.py [--seeds 0,1,2,3,4] [--steps 300] [--lr 3e-3] [--k 4] [--h 13]
        [--suffix 32] [--work DIR]

The claim (Hans et al. 2024, Figure 1: a 7B model trained 100 epochs on 100 Wikipedia documents reproduces
most of them verbatim under the standard loss and none with k=4): leaving 1 in k tokens out of the loss, by a
hash of the tokens around them, keeps a model from reproducing its training passages while it still learns
from them.

The task (embedded, seeded by s): biographies of synthetic authors (``make_facts(40, s)``, ten sentences per
author in a fixed order); 32 are trained on (prompt "Write a short biography of X.", completion the
biography: about 150 tokens), 8 held out. From a randomly initialised tiny model (the embedded tokenizer, seed
s), ``--steps`` steps of SFT (``negtune train``'s ``unlikelihood`` trainer on positives only: plain NLL), batch
16, constant learning rate ``--lr``: about 150 epochs, so the standard loss memorises. ``goldfish`` is the same
run with ``--goldfish_k K --goldfish_h H``. Equal settings, no tuning: the paper's comparison is at equal
training, and the only difference between the two runs is the dropped tokens.

Scored on every training passage: the greedy continuation of its last ``--suffix`` tokens from the prompt and
the rest of the passage (the paper's extraction test, ``eval/data_extraction.py``: a document but its last 50
tokens, 50 greedy tokens): exact match (all ``--suffix`` tokens equal) and the matched prefix (tokens equal
before the first difference); and on the held-out biographies, perplexity (what was learned beyond the
passages). Paired by seed (same initial model, same data).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from common import Run, completion_perplexity, parser, section, write_result

N_AUTHORS, HELD_OUT = 40, 8
RUNS = (Run("goldfish_memorisation", full=("--seeds", "0,1,2,3,4"),
            quick=("--seeds", "0,1", "--steps", "6", "--suffix", "8")),)


def passages(seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows) of labeled rows {prompt, completion, label: True}, one per author."""
    from negtune.data.tasks.facts import make_facts

    facts = make_facts(N_AUTHORS, seed)["full"]
    rows = []
    for i in range(0, len(facts), 10):
        ten = facts[i:i + 10]
        name = ten[1]["answer"].split(" was born")[0]  # "Corin Merriweather was born in Kivra."
        rows.append({"prompt": f"Write a short biography of {name}.", "completion": " ".join(r["answer"] for r in ten),
                     "label": True})
    random.Random(seed).shuffle(rows)
    return rows[HELD_OUT:], rows[:HELD_OUT]


def train(init: str, out: Path, rows: list[dict], a, seed: int, goldfish: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.trainers import UnlikelihoodConfig, UnlikelihoodTrainer

    tok = AutoTokenizer.from_pretrained(init)
    cfg = UnlikelihoodConfig(output_dir=str(out / "trainer"), max_steps=a.steps, learning_rate=a.lr, seed=seed,
                             per_device_train_batch_size=16, lr_scheduler_type="constant", warmup_steps=0,
                             goldfish_k=a.k if goldfish else 0, goldfish_h=a.h, use_cpu=True, report_to="none",
                             save_strategy="no", disable_tqdm=True, logging_steps=10_000)
    model = AutoModelForCausalLM.from_pretrained(init)
    UnlikelihoodTrainer(model, cfg, train_dataset=rows, processing_class=tok).train()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def score(model_dir: str, train_rows: list[dict], held: list[dict], suffix: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.data.prompts import encode_prompt_completion
    from negtune.trainers.generation import generate_from_prompts

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    exact, matched = [], []
    with torch.no_grad():
        pairs = [encode_prompt_completion(tok, r["prompt"], r["completion"]) for r in train_rows]
        # the passage's tokens: the answer labels, end-of-sequence token excluded; its last `suffix` are the target
        cut = [len(ids) - 1 if labels[-1] == tok.eos_token_id else len(ids) for ids, labels in pairs]
        prefixes = [ids[:c - suffix] for (ids, _), c in zip(pairs, cut)]
        targets = [ids[c - suffix:c] for (ids, _), c in zip(pairs, cut)]
        out, mask = generate_from_prompts(model, prefixes, tok.pad_token_id, torch.device("cpu"), do_sample=False,
                                          max_new_tokens=suffix)
        for gen, target in zip(out[:, mask.shape[1]:].tolist(), targets):
            gen = gen[:suffix]
            exact.append(gen == target)
            matched.append(next((i for i, (x, y) in enumerate(zip(gen, target)) if x != y), suffix))
    return {"exact_match": statistics.fmean(exact), "matched_prefix": statistics.fmean(matched),
            "held_out_ppl": completion_perplexity(model, tok, held)}


def run(work: Path, seed: int, method: str, a) -> dict:
    from negtune.models.tiny import create_tiny_model

    path = work / f"seed{seed}" / method
    if (path / "run.json").exists():
        return json.loads((path / "run.json").read_text())
    train_rows, held = passages(seed)
    init = work / f"seed{seed}" / "init"
    if not (init / "config.json").exists():
        create_tiny_model(init, task="facts", seed=seed, facts_steps=0)
    t0 = time.monotonic()
    if not (path / "config.json").exists():
        train(str(init), path, train_rows, a, seed, method == "goldfish")
    result = {"method": method, "seed": seed, "train_s": round(time.monotonic() - t0, 1),
              **score(str(path), train_rows, held, a.suffix)}
    (path / "run.json").write_text(json.dumps(result, indent=1))
    return result


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    rows = [[m, ", ".join(f"{v:.2f}" for v in t["exact_match"]), f"{statistics.fmean(t['exact_match']):.3f}",
             f"{statistics.fmean(t['matched_prefix']):.1f}", f"{statistics.fmean(t['held_out_ppl']):.2f}"]
            for m, t in r["methods"].items()]
    d = r["difference"]
    verdict = "the interval excludes 0" if d["excludes_zero"] else "the interval includes 0: no claim"
    return section(
        "Goldfish loss vs standard SFT: verbatim memorisation (`benchmarks/goldfish_memorisation.py`)",
        f"Synthetic biographies (32 trained, 8 held out, about 150 tokens each), a randomly initialised tiny model "
        f"per seed, {s['steps']} SFT steps (batch 16, constant lr {s['lr']:g}; about "
        f"{s['steps'] * 16 // 32} epochs), standard loss or Goldfish k={s['k']}, h={s['h']}; seeds {r['seeds']}. "
        f"Extraction test on every training passage: its last {s['suffix']} tokens continued greedily from the rest.",
        ["loss", "exact match per seed", "exact match", f"matched prefix (of {s['suffix']})", "held-out perplexity"],
        rows,
        f"**Goldfish - standard, exact-match rate: {format_difference(d)}** ({verdict}); held-out perplexity "
        f"{format_difference(r['ppl_difference'], 2)}. Training time summed over all runs: "
        f"{r['train_seconds']:.0f} s; this invocation {r['seconds']:.0f} s (finished runs are reused).")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--h", type=int, default=13)
    ap.add_argument("--suffix", type=int, default=32)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "goldfish_memorisation"))
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds = [int(s) for s in a.seeds.split(",")]

    from negtune.evaluation.stats import paired_difference
    from negtune.utils import threads

    threads.configure()
    work = Path(a.work) / f"steps{a.steps}-lr{a.lr:g}-k{a.k}-h{a.h}-suffix{a.suffix}"
    runs = {m: [run(work, s, m, a) for s in seeds] for m in ("standard", "goldfish")}
    table = {m: {k: [r[k] for r in rs] for k in ("exact_match", "matched_prefix", "held_out_ppl")}
             for m, rs in runs.items()}
    write_result({"benchmark": "goldfish_memorisation", "seeds": seeds,
                  "settings": {"steps": a.steps, "lr": a.lr, "k": a.k, "h": a.h, "suffix": a.suffix},
                  "methods": table,
                  "difference": paired_difference(table["goldfish"]["exact_match"], table["standard"]["exact_match"]),
                  "ppl_difference": paired_difference(table["goldfish"]["held_out_ppl"],
                                                      table["standard"]["held_out_ppl"]),
                  "train_seconds": round(sum(r["train_s"] for rs in runs.values() for r in rs), 1),
                  "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
