"""The embedded default model: an offline byte-level BPE tokenizer and a tiny Qwen2 model trained on CPU.

``create_tiny_model`` writes a normal Hugging Face model folder (safetensors weights, tokenizer files with a
ChatML chat template, generation config), so every other stage loads it like any hub model. For the
arithmetic task it warm-starts the model by supervised fine-tuning to a *partial* greedy accuracy, so that
sampled rollouts contain both positives and negatives.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

from negtune.data.prompts import encode_prompt_completion, format_prompt
from negtune.data.tasks.arith import check_arith, make_arith
from negtune.data.tasks.facts import make_facts
from negtune.utils import threads

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as Qwen2 uses; the trainers and the rollout engines render prompts through this template.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TASKS = ("arith", "facts")


def task_corpus(seed: int = 0) -> list[str]:
    """Text the tokenizer is trained on: both embedded tasks, with the prompt template around them."""
    texts = []
    for rec in make_arith(2000, seed=seed + 1000, difficulty=3):
        texts.append(format_prompt(rec["prompt"])[0]["content"])
        texts.append(rec["solution"])
    for rows in make_facts(40, seed=seed).values():
        for row in rows:
            texts.extend(str(v) for v in row.values())
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE (all 256 bytes in the alphabet, so any UTF-8 text tokenizes), one token per digit."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        model_max_length=1024,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@dataclass
class TinySize:
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 1024


def build_model(tokenizer: PreTrainedTokenizerFast, size: TinySize | None = None, seed: int = 0):
    """A randomly initialised Qwen2 causal LM sized for 2 CPU cores (~1M parameters)."""
    size = size or TinySize()
    config = Qwen2Config(
        vocab_size=len(tokenizer), tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, rope_theta=10000.0, **asdict(size),
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_sft(tokenizer, prompt, completion: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one prompt/completion pair; prompt tokens are masked with -100."""
    return encode_prompt_completion(tokenizer, format_prompt(prompt), completion)


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


@torch.no_grad()
def greedy_completions(model, tokenizer, prompts: list, max_new_tokens: int = 96, batch_size: int = 64) -> list[str]:
    """Greedy completions, batched with left padding (the model is put in eval mode and restored)."""
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(format_prompt(p), tokenize=False, add_generation_prompt=True)
                     for p in prompts[start : start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            out.extend(tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def arith_accuracy(model, tokenizer, records: list[dict], max_new_tokens: int = 96) -> float:
    completions = greedy_completions(model, tokenizer, [r["prompt"] for r in records], max_new_tokens)
    return sum(check_arith(c, r["answer"]) for c, r in zip(completions, records)) / len(records)


@dataclass
class WarmStartConfig:
    """How the tiny model is warm-started (defaults: ~30-40% greedy accuracy in about 2.5 minutes on 2 cores).

    The run stops at ``target_accuracy``, after ``max_steps`` or at ``time_budget_s``, whichever comes first."""

    difficulty: int = 2
    n_train: int = 20000
    n_eval: int = 64
    lr: float = 3e-3
    batch_size: int = 32
    time_budget_s: float = 600.0  # a safety cap only: on 2 free cores the step budget ends first (~3 minutes)
    eval_every: int = 100
    target_accuracy: float = 0.3  # stop once greedy accuracy on the held-out problems reaches this
    max_steps: int | None = 800  # step budget: the result does not depend on the machine's load
    seed: int = 0
    history: list = field(default_factory=list)


def _sft_losses(model, tokenizer, examples: list[tuple[list[int], list[int]]], lr: float, batch_size: int,
                seed: int, horizon: int, warmup: int, floor: float):
    """Endless SFT steps (AdamW, linear warm-up, cosine decay to ``floor`` over ``horizon``); yields each loss."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(floor, 0.5 * (1 + math.cos(math.pi * min(s, horizon)
                                                                                   / horizon))))
    model.train()
    while True:
        batch = _collate(rng.sample(examples, min(batch_size, len(examples))), tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        threads.adapt()  # (a no-op unless a negtune entry point chose the threads)
        yield loss.item()


def warm_start(model, tokenizer, cfg: WarmStartConfig, progress: Callable[[str], None] | None = None) -> float:
    """SFT on arithmetic chain-of-thought until ``target_accuracy``, ``time_budget_s`` or ``max_steps``;
    returns the held-out greedy accuracy."""
    train = make_arith(cfg.n_train, seed=cfg.seed, difficulty=cfg.difficulty)
    held_out = make_arith(cfg.n_eval, seed=cfg.seed + 10_000, difficulty=cfg.difficulty)
    examples = [encode_sft(tokenizer, r["prompt"], r["solution"]) for r in train]
    # cosine horizon of 1500 steps; the loop usually stops earlier on accuracy or time
    losses = _sft_losses(model, tokenizer, examples, cfg.lr, cfg.batch_size, cfg.seed, 1500, 50, 0.1)
    start = time.monotonic()
    for step, loss in enumerate(losses, start=1):
        elapsed = time.monotonic() - start
        out_of_budget = elapsed > cfg.time_budget_s or (cfg.max_steps is not None and step >= cfg.max_steps)
        if step % cfg.eval_every == 0 or out_of_budget:
            acc = arith_accuracy(model, tokenizer, held_out)
            elapsed = time.monotonic() - start
            cfg.history.append({"step": step, "loss": round(loss, 4), "accuracy": acc, "seconds": round(elapsed, 1)})
            if progress:
                progress(f"step {step}: loss {loss:.3f}, greedy accuracy {acc:.0%} ({elapsed:.0f}s)")
            if acc >= cfg.target_accuracy or out_of_budget or elapsed > cfg.time_budget_s:
                return acc
    raise AssertionError("unreachable: the SFT loop is endless")


def sft_steps(model, tokenizer, examples: list[tuple[list[int], list[int]]], steps: int, lr: float = 3e-3,
              batch_size: int = 32, seed: int = 0, progress: Callable[[str], None] | None = None,
              every: int = 100) -> float:
    """Plain supervised fine-tuning for ``steps`` steps (AdamW, warm-up then cosine); returns the last loss.
    ``progress`` hears the step, loss and elapsed time every ``every`` steps."""
    losses = _sft_losses(model, tokenizer, examples, lr, batch_size, seed, steps, 20, 0.05)
    last, t0 = float("nan"), time.monotonic()
    for step in range(1, steps + 1):
        last = next(losses)
        if progress and (step % every == 0 or step == steps):
            progress(f"step {step}/{steps}: loss {last:.3f} ({time.monotonic() - t0:.0f}s)")
    return last


def facts_training_rows(n_authors: int = 20, seed: int = 0, without: str | None = None) -> list[dict]:
    """What the tiny "TOFU fine-tuned" model learns: every synthetic author QA plus the world/real-author
    analogues (its "pre-training knowledge", which unlearning should keep).

    ``without``: a forget split (``forget05``/``forget10``) left out, which makes the analogue of TOFU's
    retain model (never trained on the forget set), the reference of forget quality.
    """
    splits = make_facts(n_authors, seed)
    if without is not None and without not in splits:
        raise ValueError(f"--without {without!r}: not a synthetic TOFU split ({', '.join(sorted(splits))})")
    dropped = {r["question"] for r in splits[without]} if without else set()
    rows = [{"question": r["question"], "answer": r["answer"]} for r in splits["full"] if r["question"] not in dropped]
    rows += [{"question": r["question"], "answer": r["answer"]} for r in splits["real_authors_perturbed"]]
    rows += [{"question": r["question"], "answer": r["answer"]} for r in splits["world_facts_perturbed"]]
    return rows


def create_tiny_model(
    out_dir: str | Path,
    task: str = "arith",
    seed: int = 0,
    size: TinySize | None = None,
    warm: WarmStartConfig | None = None,
    progress: Callable[[str], None] | None = None,
    facts_steps: int = 600,
    facts_without: str | None = None,
) -> dict:
    """Build, (for ``arith``) warm-start, and save a tiny model; returns the info written to ``negtune_tiny.json``.

    ``task="facts"`` fine-tunes on the synthetic TOFU-format set (``facts_steps`` steps, written with
    ``negtune data make-tofu --authors 20 --seed SEED``), the analogue of TOFU's fine-tuned model;
    ``facts_without="forget10"`` leaves that split out (the analogue of TOFU's retain90 model).
    """
    if task not in TASKS:
        raise ValueError(f"unknown tiny-model task {task!r}; known: {', '.join(TASKS)}")
    out = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(task_corpus(seed))
    model = build_model(tokenizer, size, seed=seed)
    info = {"task": task, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer), "size": asdict(size or TinySize())}
    if task == "arith":
        warm = warm or WarmStartConfig(seed=seed)
        t0 = time.monotonic()
        acc = warm_start(model, tokenizer, warm, progress)
        info.update(warm_start={k: v for k, v in asdict(warm).items() if k != "history"},
                    greedy_accuracy=acc, warm_start_seconds=round(time.monotonic() - t0, 1),
                    history=warm.history)
    elif task == "facts":
        t0 = time.monotonic()
        rows = facts_training_rows(seed=seed, without=facts_without)
        examples = [encode_prompt_completion(tokenizer, r["question"], r["answer"]) for r in rows]
        loss = sft_steps(model, tokenizer, examples, facts_steps, seed=seed, progress=progress)
        info.update(facts_rows=len(rows), facts_steps=facts_steps, facts_without=facts_without, final_loss=round(loss, 4),
                    warm_start_seconds=round(time.monotonic() - t0, 1))
        if progress:
            progress(f"fine-tuned on {len(rows)} synthetic facts for {facts_steps} steps: loss {loss:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "negtune_tiny.json").write_text(json.dumps(info, indent=2))
    return info


def create_trap_model(out_dir: str | Path, start: str | Path, trap: float = 0.8, steps: int = 300,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Teach an arithmetic model a misconception (the trap task): ``start`` fine-tuned ``steps`` more steps
    (lr 1e-3, batch 32) on 4000 difficulty-2 problems whose "triples" steps are worked out by *doubling* with
    probability ``trap`` (``make_arith(trap=...)``). The model then prefers the trap answer on such problems
    and still samples the right one now and then: its wrong rationales say what not to do, its right ones
    are rare. Returns the info written to ``negtune_tiny.json``."""
    from transformers import AutoTokenizer

    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(start)
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    rows = make_arith(4000, seed=500, difficulty=2, trap=trap)
    t0 = time.monotonic()
    loss = sft_steps(model, tokenizer, [encode_sft(tokenizer, r["prompt"], r["solution"]) for r in rows], steps,
                     lr=1e-3, seed=0, progress=progress, every=max(1, steps // 3))
    info = {"task": "arith-trap", "start": str(start), "trap": trap, "trap_steps": steps,
            "final_loss": round(loss, 4), "seconds": round(time.monotonic() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "negtune_tiny.json").write_text(json.dumps(info, indent=2))
    return info
