"""Does sequence-level unlikelihood cut degenerate repetition at little perplexity cost? MLE vs MLE + seq-UL.

    python benchmarks/negatives_unlikelihood.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 3e-4,1e-3]
        [--base-steps 100] [--steps 100] [--work DIR]

The claim (Welleck et al. 2019, Table 2): fine-tuning a language model with sequence-level unlikelihood on its
own greedy continuations (every token of a repeated 4-gram pushed down) cuts seq-rep-4 of greedy continuations
by an order of magnitude, at a small perplexity cost, against fine-tuning with MLE for the same steps.

The task (embedded, seeded by s): biographies of synthetic authors (``make_facts(40, s)``: ten facts each,
written as sentences that share their openings, "X was born in ...", "X was born in 1987." — the trap greedy
decoding falls into). Prompt "Tell me about X." / "Write a short biography of X.", completion the author's ten
sentences in a random order. 32 authors train (8 orderings x 2 prompts each), 8 are held out. A tiny model
(the embedded tokenizer, random init seeded by s) is trained by MLE for ``--base-steps``: the base. 100 steps
is the best held-out perplexity of the probed 100 / 200 / 400 (8.4 / 12.2 / 16.4 on the tuning seed: longer
training memorises the training authors), and there greedy decoding degenerates as Welleck et al. describe for
well-trained models (seq-rep-4 0.63: "X was born in 1962. X was born in 1962. ..."); at 400 steps it recites
a biography instead (0.03): a model selected by perplexity, as LMs are, is the one that loops. From it,
``--steps`` more steps of

- ``mle``: MLE on the training biographies (``UnlikelihoodTrainer`` with ``seq_ul_rate 0``);
- ``seq_ul``: the same with half the steps sequence-level UL steps (``seq_ul_rate 0.5``, 4-grams, 50-token
  prefixes, 100-token continuations: the reference's settings);
- ``click`` (Zheng et al. 2023, who compare with unlikelihood on this kind of task): the base samples 8
  continuations per training prompt (top-p 0.9, 100 tokens), labeled repetitive (negative) when their diversity
  (1 - rep-2)(1 - rep-3)(1 - rep-4) is below the 5th percentile of the true training biographies' (the
  authors' rule: a percentile of human text); ``ClickTrainer`` with the LM term on the training biographies
  (``lm_dataset``, as the authors train on gold text) and the likelihood-ranked pairs of the samples, the
  authors' repetition setting (margin 15 nats, weight 0.3, 3 negatives per prompt).

Scored on the held-out authors' 16 prompts: seq-rep-4 and rep/128 of greedy continuations (100 tokens, or to
the end-of-sequence token), and perplexity of their true biographies (completion tokens). Equal tuning: both
take the learning rate from the same grid on a tuning seed by the same rule (lowest seq-rep-4 among rates whose
perplexity is within 10% of the base's; lowest perplexity if none is). Paired by seed: same base, same data.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from common import Run, completion_perplexity, parser, section, write_result

TEMPLATES = ("Tell me about {name}.", "Write a short biography of {name}.")
N_AUTHORS, HELD_OUT, ORDERINGS, MAX_NEW = 40, 8, 8, 100
CLICK_SAMPLES = 8  # continuations sampled per training prompt for Click's pairs
RUNS = (Run("negatives_unlikelihood", full=("--seeds", "0,1,2,3,4"),
            quick=("--seeds", "0,1", "--lrs", "1e-3", "--base-steps", "20", "--steps", "4")),)


def biographies(seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): labeled rows {prompt, completion, label: True}."""
    from negtune.data.tasks.facts import make_facts

    facts = make_facts(N_AUTHORS, seed)["full"]
    per_author = [facts[i:i + 10] for i in range(0, len(facts), 10)]
    rng = random.Random(seed)
    train, held = [], []
    for k, rows in enumerate(per_author):
        name = rows[1]["answer"].split(" was born")[0]  # "Corin Merriweather was born in Kivra."
        sentences = [r["answer"] for r in rows]
        for t in TEMPLATES:
            orders = 1 if k >= N_AUTHORS - HELD_OUT else ORDERINGS
            for _ in range(orders):
                rng.shuffle(sentences)
                row = {"prompt": t.format(name=name), "completion": " ".join(sentences), "label": True}
                (held if k >= N_AUTHORS - HELD_OUT else train).append(row)
    return train, held


def _config(out: Path, steps: int, lr: float, seed: int, seq_ul_rate: float, batch: int = 16,
            token_ul_alpha: float = 0.0):
    from negtune.trainers.unlikelihood_config import UnlikelihoodConfig

    return UnlikelihoodConfig(output_dir=str(out), max_steps=steps, learning_rate=lr, seed=seed,
                              per_device_train_batch_size=batch, seq_ul_rate=seq_ul_rate, seq_ul_ngram=4,
                              token_ul_alpha=token_ul_alpha,
                              seq_ul_prefix_length=50, seq_ul_max_new_tokens=MAX_NEW, lr_scheduler_type="constant",
                              warmup_steps=0, use_cpu=True, report_to="none", save_strategy="no",
                              disable_tqdm=True, logging_steps=10_000)


def train(model_dir: str, out: Path, rows: list[dict], steps: int, lr: float, seed: int, seq_ul_rate: float,
          batch: int = 16, peft_config=None, token_ul_alpha: float = 0.0) -> None:
    """MLE (``seq_ul_rate`` 0) or MLE + seq-UL from ``model_dir``, with token-level UL when ``token_ul_alpha``;
    the model (LoRA merged) saved to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.trainers import UnlikelihoodTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = UnlikelihoodTrainer(model, _config(out / "trainer", steps, lr, seed, seq_ul_rate, batch, token_ul_alpha),
                                  train_dataset=rows, processing_class=tok, peft_config=peft_config)
    trainer.train()
    model = trainer.model.merge_and_unload() if peft_config is not None else model
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def click_samples(work: Path, seed: int, base: str, train_rows: list[dict]) -> tuple[list[dict], dict]:
    """The base's sampled continuations of each training prompt, labeled by Click's diversity rule (made once
    per seed), and what the labeling found."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.data.prompts import encode_prompt_completion
    from negtune.evaluation.repetition import diversity
    from negtune.trainers.generation import generate_from_prompts

    path = work / f"seed{seed}" / "click-samples.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["rows"], saved["stats"]
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    gold = [encode_prompt_completion(tok, r["prompt"], r["completion"], add_eos=False) for r in train_rows]
    gold_div = sorted(diversity([t for t in labels if t != -100]) for _, labels in gold)
    threshold = gold_div[int(0.05 * len(gold_div))]
    prompts = list(dict.fromkeys(r["prompt"] for r in train_rows))
    ids = [encode_prompt_completion(tok, p, "", add_eos=False)[0] for p in prompts]
    torch.manual_seed(seed)
    rows = []
    with torch.no_grad():
        out, mask = generate_from_prompts(model, ids, tok.pad_token_id, torch.device("cpu"), do_sample=True,
                                          top_p=0.9, temperature=1.0, top_k=0, max_new_tokens=MAX_NEW,
                                          num_return_sequences=CLICK_SAMPLES)
    for k, row in enumerate(out[:, mask.shape[1]:].tolist()):
        cont = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
        rows.append({"prompt": prompts[k // CLICK_SAMPLES], "completion": tok.decode(cont, skip_special_tokens=True),
                     "label": diversity(cont) >= threshold})
    stats = {"threshold": threshold, "samples": len(rows), "negatives": sum(not r["label"] for r in rows)}
    path.write_text(json.dumps({"rows": rows, "stats": stats}))
    return rows, stats


def train_click(base: str, out: Path, samples: list[dict], gold: list[dict], steps: int, lr: float,
                seed: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.trainers.click_config import ClickConfig
    from negtune.trainers.click_trainer import ClickTrainer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    args = ClickConfig(output_dir=str(out / "trainer"), max_steps=steps, learning_rate=lr, seed=seed,
                       per_device_train_batch_size=16, margin=15.0, contrast_weight=0.3, max_pairs=3,
                       lr_scheduler_type="constant", warmup_steps=0, use_cpu=True, report_to="none",
                       save_strategy="no", disable_tqdm=True, logging_steps=10_000)
    ClickTrainer(model, args, train_dataset=samples, processing_class=tok, lm_dataset=gold).train()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def score(model_dir: str, held: list[dict]) -> dict:
    """seq-rep-4 / rep/128 of greedy continuations and perplexity of the true completions, held-out prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.data.prompts import encode_prompt_completion
    from negtune.evaluation.repetition import repetition_metrics
    from negtune.trainers.generation import generate_from_prompts

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    pairs = [encode_prompt_completion(tok, r["prompt"], r["completion"]) for r in held]
    prompts = [ids[:sum(1 for y in labels if y == -100)] for ids, labels in pairs]
    with torch.no_grad():
        out, mask = generate_from_prompts(model, prompts, tok.pad_token_id, torch.device("cpu"), do_sample=False,
                                          max_new_tokens=MAX_NEW)
        conts = []
        for row in out[:, mask.shape[1]:].tolist():
            cut = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
            conts.append(row[:cut])
    return {**repetition_metrics(conts), "ppl": completion_perplexity(model, tok, held),
            "mean_length": statistics.fmean(len(c) for c in conts), "example": tok.decode(conts[0])[:300]}


def base_model(work: Path, seed: int, train_rows: list[dict], base_steps: int) -> str:
    from negtune.models.tiny import create_tiny_model

    init, base = work / f"seed{seed}" / "init", work / f"seed{seed}" / "base"
    if not (base / "config.json").exists():
        if not (init / "config.json").exists():
            create_tiny_model(init, task="facts", seed=seed, facts_steps=0)
        train(str(init), base, train_rows, base_steps, 3e-3, seed, 0.0)
    return str(base)


def run(work: Path, seed: int, method: str, lr: float, a) -> dict:
    path = work / f"seed{seed}" / f"{method}-lr{lr:g}"
    if (path / "run.json").exists():
        return json.loads((path / "run.json").read_text())
    train_rows, held = biographies(seed)
    base = base_model(work, seed, train_rows, a.base_steps)
    t0 = time.monotonic()
    extra = {}
    if method == "click":
        samples, extra["click_samples"] = click_samples(work, seed, base, train_rows)
        if not (path / "config.json").exists():
            train_click(base, path, samples, train_rows, a.steps, lr, seed)
    elif not (path / "config.json").exists():
        train(base, path, train_rows, a.steps, lr, seed, 0.5 if method == "seq_ul" else 0.0)
    result = {"method": method, "lr": lr, "seed": seed, "train_s": round(time.monotonic() - t0, 1),
              "base": base_score(work, seed, base, held), "after": score(str(path), held), **extra}
    (path / "run.json").write_text(json.dumps(result, indent=1))
    return result


def base_score(work: Path, seed: int, base: str, held: list[dict]) -> dict:
    path = work / f"seed{seed}" / "base-score.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(score(base, held)))
    return json.loads(path.read_text())


def choose(results: dict[float, dict], reference_ppl: float | None = None) -> float:
    """Lowest seq-rep-4 among learning rates whose perplexity is within 10% of ``reference_ppl`` (default: each
    run's base's), else lowest ppl."""
    ok = {lr: r for lr, r in results.items()
          if r["after"]["ppl"] <= 1.1 * (r["base"]["ppl"] if reference_ppl is None else reference_ppl)}
    if ok:
        return min(ok, key=lambda lr: ok[lr]["after"]["seq_rep_4"])
    return min(results, key=lambda lr: results[lr]["after"]["ppl"])


def seeds_and_rates(ap, a) -> tuple[list[int], list[float]]:
    """(evaluation seeds, learning-rate grid) from ``--seeds`` and ``--lrs``; ``--tune-seed`` must be neither."""
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.tune_seed in seeds:
        ap.error("--tune-seed must not be an evaluation seed")
    return seeds, [float(x) for x in a.lrs.split(",")]


def tuned_runs(methods, lrs: list[float], seeds: list[int], tune_seed: int, run,
               ppl_against: str = "start") -> tuple[dict, dict, dict, list]:
    """Every method at every rate of the grid on the tuning seed (``run(method, lr, seed)`` -> a run's result),
    the rate ``choose`` keeps, then every seed at it. ``ppl_against`` is the perplexity the rule's +10% is
    measured from: ``start`` the model before training, ``mle`` MLE's chosen run on the tuning seed (the
    target's own bound; MLE itself is chosen against the start). Returns (the tuning scores for the report,
    the chosen rate per method, the seeds' runs per method, every run's training seconds)."""
    if ppl_against not in ("start", "mle"):
        raise ValueError(f"ppl_against: {ppl_against!r} is neither 'start' nor 'mle'")
    tuning, chosen, spent, reference = {}, {}, [], None
    for m in ["mle", *(m for m in methods if m != "mle")]:
        results = {lr: run(m, lr, tune_seed) for lr in lrs}
        spent += [r["train_s"] for r in results.values()]
        tuning[m] = {f"{lr:g}": {k: round(v["after"][k], 3) for k in ("seq_rep_4", "ppl")} for lr, v in results.items()}
        chosen[m] = choose(results, reference)
        if m == "mle" and ppl_against == "mle":
            reference = results[chosen[m]]["after"]["ppl"]
    runs = {m: [run(m, chosen[m], s) for s in seeds] for m in methods}
    return tuning, chosen, runs, spent + [r["train_s"] for rs in runs.values() for r in rs]


def summary(runs: dict[str, list[dict]], chosen: dict[str, float]) -> dict:
    """Per method its learning rate and per-seed scores; the base's mean; seq-UL - MLE paired by seed, and the
    target's two ratios (seq-rep-4 seq-UL / MLE, perplexity increase); the same against MLE for every other
    method (``vs_mle``)."""
    from negtune.evaluation.stats import paired_difference

    table = {m: {"lr": chosen[m], **{k: [r["after"][k] for r in rs] for k in ("seq_rep_4", "rep_128", "ppl")},
                 "example": rs[0]["after"]["example"]} for m, rs in runs.items()}
    mle = table["mle"]

    def against_mle(t: dict) -> dict:
        return {"difference": paired_difference(t["seq_rep_4"], mle["seq_rep_4"]),
                "ppl_difference": paired_difference(t["ppl"], mle["ppl"]),
                "seq_rep_ratio": statistics.fmean(t["seq_rep_4"]) / max(statistics.fmean(mle["seq_rep_4"]), 1e-9),
                "ppl_increase": statistics.fmean(t["ppl"]) / statistics.fmean(mle["ppl"]) - 1}

    others = {m: against_mle(t) for m, t in table.items() if m not in ("mle", "seq_ul")}
    return {"base": {k: statistics.fmean(r["base"][k] for r in runs["mle"]) for k in ("seq_rep_4", "ppl")},
            "methods": table, **against_mle(table["seq_ul"]), **({"vs_mle": others} if others else {})}


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    rows = [[m, f"{t['lr']:g}", ", ".join(f"{v:.3f}" for v in t["seq_rep_4"]), f"{statistics.fmean(t['seq_rep_4']):.3f}",
             f"{statistics.fmean(t['rep_128']):.3f}", f"{statistics.fmean(t['ppl']):.2f}"]
            for m, t in r["methods"].items()]
    ratio, dppl = r["seq_rep_ratio"], r["ppl_increase"]
    return section(
        "Negatives that matter: sequence-level unlikelihood and Click vs MLE, repetition (`benchmarks/negatives_unlikelihood.py`)",
        f"Synthetic biographies, tiny model per seed (MLE base {s['base_steps']} steps: held-out seq-rep-4 "
        f"{r['base']['seq_rep_4']:.3f}, perplexity {r['base']['ppl']:.2f}), then {s['steps']} more steps of MLE, "
        f"MLE + seq-UL (rate 0.5) or Click (the LM term on the training biographies, margin 15 nats, weight 0.3, "
        f"pairs of the base's own samples labeled by diversity), batch 16, constant learning rate from the grid {s['lrs']} chosen on tuning seed "
        f"{s['tune_seed']} by the same rule for all; seeds {r['seeds']}. Greedy continuations of 16 held-out "
        "prompts (100 tokens or to EOS).",
        ["method", "lr", "seq-rep-4 per seed", "seq-rep-4", "rep/128", "perplexity"], rows,
        f"**seq-UL / MLE seq-rep-4: {ratio:.2f}x; seq-UL - MLE seq-rep-4: {format_difference(r['difference'])}; "
        f"perplexity {100 * dppl:+.1f}% ({format_difference(r['ppl_difference'], 2)})** (target: < 0.5x at <= +10%). "
        + _click_line(r) + f" Tuning: {r['tuning']}. Training time summed over all runs, tuning included: "
        f"{r.get('train_seconds', 0):.0f} s; this invocation {r['seconds']:.0f} s (finished runs are reused).")


def _click_line(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    c = r.get("click")
    if not c:
        return ""
    negatives = statistics.fmean(x["negatives"] / x["samples"] for x in c["samples"])
    return (f"\n\n**Click / MLE seq-rep-4: {c['seq_rep_ratio']:.2f}x; Click - MLE: {format_difference(c['vs_mle'])}; "
            f"Click - seq-UL: {format_difference(c['vs_seq_ul'])}; perplexity {100 * c['ppl_increase']:+.1f}% vs MLE "
            f"({format_difference(c['ppl_vs_mle'], 2)})** ({100 * negatives:.0f}% of the base's samples labeled "
            "repetitive).")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--tune-seed", type=int, default=100)
    ap.add_argument("--lrs", default="3e-4,1e-3")
    ap.add_argument("--base-steps", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--methods", default="mle,seq_ul,click")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "negatives_unlikelihood"))
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds, lrs = seeds_and_rates(ap, a)

    from negtune.evaluation.stats import paired_difference
    from negtune.utils import threads

    threads.configure()  # negtune's policy: the free cores, adapted while it runs
    work = Path(a.work) / f"base{a.base_steps}-steps{a.steps}"
    methods = tuple(a.methods.split(","))
    if not {"mle", "seq_ul"} <= set(methods) or not set(methods) <= {"mle", "seq_ul", "click"}:
        ap.error("--methods: mle,seq_ul and optionally click")
    tuning, chosen, runs, spent = tuned_runs(methods, lrs, seeds, a.tune_seed,
                                             lambda m, lr, s: run(work, s, m, lr, a))
    compared = summary(runs, chosen)
    click = compared.pop("vs_mle", {}).get("click")  # reported in its own block, with Click - seq-UL beside it
    table = compared["methods"]
    write_result({"benchmark": "negatives_seq_unlikelihood", "seeds": seeds,
                  "settings": {"base_steps": a.base_steps, "steps": a.steps, "lrs": lrs, "tune_seed": a.tune_seed},
                  "tuning": tuning, **compared,
                  **({"click": {
                      "vs_mle": click["difference"],
                      "vs_seq_ul": paired_difference(table["click"]["seq_rep_4"], table["seq_ul"]["seq_rep_4"]),
                      "ppl_vs_mle": click["ppl_difference"], "seq_rep_ratio": click["seq_rep_ratio"],
                      "ppl_increase": click["ppl_increase"],
                      "samples": [r["click_samples"] for r in runs["click"]]}} if click else {}),
                  "train_seconds": round(sum(spent), 1), "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
