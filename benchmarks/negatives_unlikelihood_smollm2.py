"""Does sequence-level unlikelihood cut a pretrained model's repetition? SmolLM2-135M-Instruct: MLE vs MLE + seq-UL.

    python benchmarks/negatives_unlikelihood_smollm2.py [--seeds 0,1,2,3,4] [--tune-seed 100] [--lrs 3e-4,1e-3]
        [--steps 30] [--batch 4] [--held-out 32] [--model DIR] [--work DIR]

The claim (Welleck et al. 2019, Table 2): fine-tuning a converged language model with sequence-level
unlikelihood on its own greedy continuations of 50-token prefixes cuts seq-rep-4 by an order of magnitude
(GPT-2 size, Wikitext-103: 0.506 -> 0.0x) at a small perplexity cost, against fine-tuning with MLE alone.
``negatives_unlikelihood.py`` tests it on a tiny model trained from scratch, where continued MLE itself moves
repetition; this script tests it where the paper does, on a pretrained model.

The model: SmolLM2-135M-Instruct (``negtune model prepare smollm2-135m-instruct``, or ``--model``) used as a plain
language model: a copy without its chat template, so prompts are raw text. Its greedy continuations of prefixes
of English prose loop ("He is also known for his work in the Arab-Israeli conflict. ... the Arab-Israeli
conflict"): seq-rep-4 0.54 on 16 TOFU passages, close to the paper's 0.506.

The text: TOFU's 200 fictitious authors (``tofu/full.json`` under the shared data), each author's 20 answers in
order, cut at answer ends into chunks of at least ``CHUNK`` tokens. A chunk's first ``PREFIX`` tokens are the
prompt, the rest the completion (it ends where an answer ends, so the end-of-sequence token after it is right).
Seed s shuffles the authors: the first ``--held-out`` authors' first chunks are scored, every chunk of the others
trains. From the model, ``--steps`` steps (batch ``--batch``, LoRA r 16 on every linear layer, merged after,
constant learning rate) of

- ``mle``: MLE on the training completions (``UnlikelihoodTrainer`` with ``seq_ul_rate 0``);
- ``seq_ul``: the same with half the steps sequence-level UL on greedy continuations (100 tokens) of the
  training prefixes (``seq_ul_rate 0.5``, 4-grams: the paper's settings);
- with ``--methods``, also ``token_ul`` (MLE + token-level UL, the previous tokens of the completion as
  candidates, ``token_ul_alpha 1``) and ``token_seq_ul`` (both): the paper's other two rows.

Scored on the held-out prefixes: seq-rep-4 and rep/128 of greedy continuations (100 tokens, or to the
end-of-sequence token) and the perplexity of the true completions. Equal tuning: the same grid and rule for
both (``negatives_unlikelihood.tuned_runs``: the lowest seq-rep-4 among rates within +10% perplexity of the model
before training, else the lowest perplexity), on a tuning seed. Paired by seed: same held-out authors, same
training text. Resumable: each run keeps its model and scores under ``--work``.

``--from-mle LR`` is the paper's own protocol, sequence-level fine-tuning of a model already trained with MLE:
every run starts from its seed's ``mle`` model at rate LR (the run above, trained first if missing) and trains
``--steps`` more steps, ``mle`` (continued MLE, the baseline) or ``seq_ul``; the rule's "model before training"
is then that MLE model (meant as the target's own bound; it is not, see below). Its test, stated before it ran
(``negatives_unlikelihood_smollm2_finetune``): rates [1e-4, 3e-4], seeds 0-4, met if seq-UL / MLE seq-rep-4 is
below 0.5x, the paired difference's 95% interval excludes 0 and perplexity rises at most 10% against MLE.

It was not met: seq-rep-4 0.28x, but perplexity +13.6% against continued MLE, which kept lowering its own
perplexity while seq-UL's rule bound it to the (higher) MLE model it started from. ``--ppl-against mle`` makes
the rule's bound the target's: within +10% of MLE's tuned run on the tuning seed (MLE is still chosen against
the model before training). A second test, stated before its runs started (2026-12-01 05:37,
``negatives_unlikelihood_smollm2_finetune_mle_bound``): the same grid, tuning seed and evaluation seeds (their
MLE runs reused; on the tuning seed the rule now keeps 1e-4, 11.07 against MLE's 10.16, where 3e-4 is at
11.25), met on the same three conditions. A second look at the same seeds, so read a pass as "a rate the
target's own rule picks holds on the seeds", not as a fresh pre-registered test. It was met (0.44x, +8.0%).
``token_seq_ul``, the paper's best row, was added to that Run afterwards, by the same rule; not part of the test.

A third test, the clean confirmation of the second, stated before its runs started (2026-12-01 07:10,
``negatives_unlikelihood_smollm2_finetune_mle_bound_fresh``): the same settings and tuning seed (its runs reused,
so the rates stay MLE 3e-4 and seq-UL 1e-4) on fresh evaluation seeds 5-9, each with its own MLE model; met on
the same three conditions (seq-UL / MLE seq-rep-4 below 0.5x, the paired 95% interval excluding 0, perplexity at
most +10% against MLE). Not met: 0.40x, but perplexity +10.5%.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from pathlib import Path

from common import Run, parser, section, write_result
from negatives_unlikelihood import base_score, score, seeds_and_rates, summary, train, tuned_runs

CHUNK, PREFIX, AUTHOR_ANSWERS = 150, 50, 20
# method -> (fraction of steps that are sequence-level UL steps, token-level UL weight): Welleck et al.'s
# Table 2 rows L_MLE, L_UL-seq, L_UL-token, L_UL-token+seq, with the reference's settings (0.5, 1.0)
METHODS = {"mle": (0.0, 0.0), "seq_ul": (0.5, 0.0), "token_ul": (0.0, 1.0), "token_seq_ul": (0.5, 1.0)}


def _finetune(name: str, seeds: str, quick_seeds: str, *both: str, full_only: tuple[str, ...] = ()) -> Run:
    """The paper's protocol (``--from-mle 3e-4``, grid [1e-4, 3e-4]) on ``seeds``; ``both`` added at either size."""
    return Run(name, full=("--seeds", seeds, "--from-mle", "3e-4", "--lrs", "1e-4,3e-4", *both, *full_only),
               quick=("--seeds", quick_seeds, "--from-mle", "3e-4", "--lrs", "1e-4", "--steps", "2", "--held-out", "4",
                      *both))


RUNS = (Run("negatives_unlikelihood_smollm2", full=("--seeds", "0,1,2,3,4", "--methods", "token_ul"),
            quick=("--seeds", "0,1", "--lrs", "3e-4", "--steps", "2", "--held-out", "4")),
        _finetune("negatives_unlikelihood_smollm2_finetune", "0,1,2,3,4", "0,1"),
        _finetune("negatives_unlikelihood_smollm2_finetune_mle_bound", "0,1,2,3,4", "0,1", "--ppl-against", "mle",
                  full_only=("--methods", "token_seq_ul")),
        _finetune("negatives_unlikelihood_smollm2_finetune_mle_bound_fresh", "5,6,7,8,9", "5,6", "--ppl-against", "mle"))


def plain_lm(model: str, out: Path) -> str:
    """A copy of ``model`` without a chat template: its tokenizer renders a prompt as the raw text it is."""
    if not (out / "config.json").exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model, tmp, ignore=shutil.ignore_patterns("chat_template.jinja", "NEGTUNE_ORIGIN.json"))
        config = json.loads((tmp / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
        tmp.rename(out)
    return str(out)


def chunks(tok, answers: list[str]) -> list[dict]:
    """One author's answers as prompt/completion rows: consecutive answers joined until at least ``CHUNK``
    tokens, the first ``PREFIX`` of them the prompt."""
    rows, text = [], ""
    for answer in answers:
        text = f"{text} {answer}" if text else answer
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= CHUNK:
            rows.append({"prompt": tok.decode(ids[:PREFIX]), "completion": tok.decode(ids[PREFIX:]), "label": True})
            text = ""
    return rows


def split(tok, tofu: Path, seed: int, held_out: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows) of seed ``seed``: every chunk of the training authors, the first chunk of
    each held-out author."""
    from negtune.data.io import read_rows

    qa = read_rows(tofu)
    if len(qa) % AUTHOR_ANSWERS:
        raise ValueError(f"{tofu}: {len(qa)} rows is not a whole number of authors ({AUTHOR_ANSWERS} answers each)")
    authors = [[r["answer"] for r in qa[i:i + AUTHOR_ANSWERS]] for i in range(0, len(qa), AUTHOR_ANSWERS)]
    random.Random(seed).shuffle(authors)
    held = [chunks(tok, a)[0] for a in authors[:held_out]]
    return [row for a in authors[held_out:] for row in chunks(tok, a)], held


def lora():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def run(work: Path, start, seed: int, method: str, lr: float, a) -> dict:
    """One run, or its record when finished: ``start(seed, held)`` gives the model it trains from and that
    model's scores on the held-out passages."""
    from transformers import AutoTokenizer

    path = work / f"seed{seed}" / f"{method}-lr{lr:g}"
    if (path / "run.json").exists():
        return json.loads((path / "run.json").read_text())
    train_rows, held = split(AutoTokenizer.from_pretrained(a.plain), a.tofu, seed, a.held_out)
    base, base_scores = start(seed, held)
    t0 = time.monotonic()
    if not (path / "config.json").exists():
        seq_ul_rate, token_ul_alpha = METHODS[method]
        train(base, path, train_rows, a.steps, lr, seed, seq_ul_rate, a.batch, lora(), token_ul_alpha)
    result = {"method": method, "lr": lr, "seed": seed, "train_s": round(time.monotonic() - t0, 1),
              "train_rows": len(train_rows), "base": base_scores, "after": score(str(path), held)}
    (path / "run.json").write_text(json.dumps(result, indent=1))
    return result


def pretrained_start(work: Path, plain: str):
    """Runs start from the plain-LM copy; its scores are kept per seed."""
    def start(seed: int, held: list[dict]) -> tuple[str, dict]:
        return plain, base_score(work, seed, plain, held)
    return start


def mle_start(work: Path, plain: str, lr: float, a):
    """Runs start from the seed's MLE run at ``lr`` (trained first if missing); its scores are that run's."""
    def start(seed: int, held: list[dict]) -> tuple[str, dict]:
        first = run(work, pretrained_start(work, plain), seed, "mle", lr, a)
        return str(work / f"seed{seed}" / f"mle-lr{lr:g}"), first["after"]
    return start


def results_section(r: dict) -> str:
    from negtune.evaluation.stats import format_difference

    s = r["settings"]
    rows = [[m, f"{t['lr']:g}", ", ".join(f"{v:.3f}" for v in t["seq_rep_4"]), f"{statistics.fmean(t['seq_rep_4']):.3f}",
             f"{statistics.fmean(t['rep_128']):.3f}", f"{statistics.fmean(t['ppl']):.2f}"]
            for m, t in r["methods"].items()]
    start = s.get("from_mle")
    where = (", fine-tuning the MLE model (the paper's protocol)" if start else "")
    against_mle = s.get("ppl_against") == "mle"
    where += ", rates chosen within +10% of MLE's perplexity" if against_mle else ""
    bound = "MLE's chosen run" if against_mle else "the model before training"
    before = (f"Each seed's MLE model ({s['steps']} steps at {start:g} from SmolLM2-135M-Instruct as a plain "
              "language model, the run above)" if start else
              "SmolLM2-135M-Instruct as a plain language model (no chat template), before training")
    return section(
        f"Negatives that matter: sequence-level unlikelihood vs MLE on a pretrained model{where}, repetition "
        "(`benchmarks/negatives_unlikelihood_smollm2.py`)",
        f"{before}: greedy seq-rep-4 "
        f"{r['base']['seq_rep_4']:.3f}, perplexity {r['base']['ppl']:.2f} on {s['held_out']} held-out TOFU "
        f"passages per seed ({PREFIX}-token prefixes, continuations of 100 tokens or to EOS). {s['steps']} "
        f"{'more ' if start else ''}steps "
        f"of MLE or MLE + seq-UL (rate 0.5, 4-grams) on the other authors' text ({r['train_rows']} chunks), batch "
        f"{s['batch']}, LoRA r 16 on every linear layer, constant learning rate from the grid {s['lrs']} chosen on "
        f"tuning seed {s['tune_seed']} by the same rule for both (the lowest seq-rep-4 within +10% perplexity of "
        f"{bound}); seeds {r['seeds']}.",
        ["method", "lr", "seq-rep-4 per seed", "seq-rep-4", "rep/128", "perplexity"], rows,
        f"**seq-UL / MLE seq-rep-4: {r['seq_rep_ratio']:.2f}x; seq-UL - MLE seq-rep-4: "
        f"{format_difference(r['difference'])}; perplexity {100 * r['ppl_increase']:+.1f}% "
        f"({format_difference(r['ppl_difference'], 2)})** (target: < 0.5x at <= +10%)."
        + "".join(f" {m} / MLE seq-rep-4: {v['seq_rep_ratio']:.2f}x, {m} - MLE {format_difference(v['difference'])}, "
                  f"perplexity {100 * v['ppl_increase']:+.1f}% ({format_difference(v['ppl_difference'], 2)})."
                  for m, v in r.get("vs_mle", {}).items())
        + f" Tuning: {r['tuning']}. "
        f"Training time summed over all runs, tuning included: {r['train_seconds']:.0f} s; this invocation "
        f"{r['seconds']:.0f} s (finished runs are reused).")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--tune-seed", type=int, default=100)
    ap.add_argument("--lrs", default="3e-4,1e-3")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--held-out", type=int, default=32, help="authors scored per seed (their first passage)")
    ap.add_argument("--methods", default="mle,seq_ul", help=f"two or more of {', '.join(METHODS)}; mle and seq_ul "
                    "are always run")
    ap.add_argument("--from-mle", type=float, metavar="LR",
                    help="start every run from its seed's MLE model at this rate (sequence-level fine-tuning)")
    ap.add_argument("--ppl-against", choices=("start", "mle"), default="start",
                    help="the tuning rule's +10%% perplexity bound: from the model before training (start) or "
                    "from MLE's chosen run on the tuning seed (mle, the target's own bound)")
    ap.add_argument("--model", help="model folder (default: negtune model prepare smollm2-135m-instruct)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "negtune" / "negatives_unlikelihood_smollm2"))
    a = ap.parse_args()
    t0 = time.monotonic()
    seeds, lrs = seeds_and_rates(ap, a)
    unknown = set(a.methods.split(",")) - set(METHODS)
    if unknown:
        ap.error(f"--methods: unknown {', '.join(sorted(unknown))}; known: {', '.join(METHODS)}")
    methods = [m for m in METHODS if m in {"mle", "seq_ul", *a.methods.split(",")}]

    from negtune.data.paths import shared_data_dir
    from negtune.models.prepare import prepare
    from negtune.utils import threads

    data = shared_data_dir()
    if data is None or not (data / "tofu" / "full.json").exists():
        ap.error("needs TOFU's full.json under the shared data (NEGTUNE_DATA_DIR)")
    a.tofu = data / "tofu" / "full.json"
    threads.configure()  # negtune's policy: the free cores, adapted while it runs
    model = a.model or str(prepare("smollm2-135m-instruct", log=lambda *_: None)[0])
    first = Path(a.work) / f"{Path(model).name}-steps{a.steps}-b{a.batch}-held{a.held_out}"
    first.mkdir(parents=True, exist_ok=True)
    a.plain = plain_lm(model, first / "plain-lm")
    if a.from_mle is None:
        work, start = first, pretrained_start(first, a.plain)
    else:
        work, start = first / f"from-mle-lr{a.from_mle:g}", mle_start(first, a.plain, a.from_mle, a)
    tuning, chosen, runs, spent = tuned_runs(methods, lrs, seeds, a.tune_seed,
                                             lambda m, lr, s: run(work, start, s, m, lr, a), a.ppl_against)
    write_result({"benchmark": "negatives_seq_unlikelihood_smollm2", "seeds": seeds,
                  "settings": {"steps": a.steps, "batch": a.batch, "held_out": a.held_out, "lrs": lrs,
                               "tune_seed": a.tune_seed, "model": Path(model).name,
                               "from_mle": a.from_mle, "ppl_against": a.ppl_against},
                  "train_rows": runs["mle"][0]["train_rows"], "tuning": tuning, **summary(runs, chosen),
                  "train_seconds": round(sum(spent), 1), "seconds": round(time.monotonic() - t0, 1)}, a.json)


if __name__ == "__main__":
    main()
