"""Scoring with a trained Likra pair of heads: multiple choice and re-ranking a rollout's samples.

``LikraScorer(folder)`` loads the base named in ``folder/likra.json`` once, with both LoRA heads; every
score is computed from three summed answer log-probs (base, positive head, negative head), so one pass gives
every rule the comparisons need:

- ``likra``: log P+ - beta log P- (:func:`negtune.losses.likra.likra_score`);
- ``positive``: log P+ alone (the positive head is SFT on the positives: the paper's baseline);
- ``base_likra``: log P_base - beta log P- (the negative head alone, on the untouched base);
- ``base``: log P_base (the model before training).

``normalise="chars"`` divides each score by the answer's length in characters (lm-evaluation-harness's
``acc_norm``, which the authors report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from negtune.data.prompts import encode_prompt_completion
from negtune.losses.likra import HEADS, MANIFEST, likra_score

RULES = ("likra", "positive", "base_likra", "base")


class LikraScorer:
    def __init__(self, folder: str | Path, beta: float | None = None, dtype: str = "float32", batch_size: int = 8,
                 trust_remote_code: bool = False):
        from peft import PeftModel

        from negtune.models.loading import ModelLoadError, load_model, load_tokenizer

        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            raise ModelLoadError(f"{folder}: not a Likra output (no {MANIFEST}; train one with `negtune train likra`)")
        manifest = json.loads((folder / MANIFEST).read_text())
        self.beta = manifest.get("beta", 1.0) if beta is None else beta
        self.tokenizer = load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
        base = load_model(manifest["base"], dtype=dtype, trust_remote_code=trust_remote_code)
        self.model = PeftModel.from_pretrained(base, str(folder / HEADS[0]), adapter_name=HEADS[0])
        self.model.load_adapter(str(folder / HEADS[1]), adapter_name=HEADS[1])
        self.model.eval()
        self.batch_size = batch_size

    def head_logps(self, prompts: list, answers: list[str]) -> dict[str, torch.Tensor]:
        """Summed answer log-probs under ``base``, ``positive`` and ``negative`` (tensors of shape (N,))."""
        from negtune.trainers.reference import compute_reference_logps

        encoded = [encode_prompt_completion(self.tokenizer, p, a) for p, a in zip(prompts, answers)]
        pad = self.tokenizer.pad_token_id
        out = {"base": compute_reference_logps(self.model, encoded, pad, self.batch_size, adapter=False)}
        for head in HEADS:
            self.model.set_adapter(head)
            out[head] = compute_reference_logps(self.model, encoded, pad, self.batch_size)
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}

    def scores(self, prompts: list, answers: list[str], normalise: str = "none") -> dict[str, torch.Tensor]:
        """Every rule's score of each answer (see the module docstring)."""
        return rule_scores(self.head_logps(prompts, answers), answers, self.beta, normalise)


def rule_scores(logps: dict[str, torch.Tensor], answers: list[str], beta: float = 1.0,
                normalise: str = "none") -> dict[str, torch.Tensor]:
    """The rules' scores from the three heads' summed log-probs."""
    if normalise not in ("none", "chars"):
        raise ValueError(f"normalise must be 'none' or 'chars', got {normalise!r}")
    lengths = torch.tensor([len(a) for a in answers], dtype=torch.float64) if normalise == "chars" else None
    pos, neg, base = logps["positive"], logps["negative"], logps["base"]
    raw = {"likra": likra_score(pos, neg, beta), "positive": pos, "base_likra": likra_score(base, neg, beta),
           "base": base}
    return {k: v if lengths is None else v / lengths.clamp(min=1) for k, v in raw.items()}


def choose(scores: torch.Tensor, groups: list) -> dict:
    """The index of the best-scored item of each group (``groups[i]``: the group of item i; first best wins)."""
    values = scores.tolist()
    best: dict = {}
    for i, g in enumerate(groups):
        if g not in best or values[i] > values[best[g]]:
            best[g] = i
    return best


def multiple_choice_accuracy(scorer: LikraScorer, questions: list[dict], normalise: str = "none") -> dict[str, float]:
    """Accuracy of each rule on ``questions`` (each ``{"prompt", "choices": [...], "answer": index}``)."""
    prompts, answers, groups, starts = [], [], [], []
    for q, row in enumerate(questions):
        starts.append(len(answers))  # where question q's choices begin
        for choice in row["choices"]:
            prompts.append(row["prompt"])
            answers.append(choice)
            groups.append(q)
    scores = scorer.scores(prompts, answers, normalise)
    return {rule: sum(best - starts[q] == questions[q]["answer"] for q, best in choose(s, groups).items())
            / len(questions) for rule, s in scores.items()}


def rerank_accuracy(scorer: LikraScorer, rows: list[dict], normalise: str = "none") -> dict[str, float]:
    """A rollout's samples re-ranked: for each prompt (``prompt_id``), the sample each rule scores highest;
    the fraction of prompts whose chosen sample is correct (``label``), per rule, and ``mean`` (avg@n)."""
    scores = scorer.scores([r["prompt"] for r in rows], [r["completion"] for r in rows], normalise)
    groups = [r["prompt_id"] for r in rows]
    out = {rule: sum(bool(rows[i]["label"]) for i in choose(s, groups).values()) / len(set(groups))
           for rule, s in scores.items()}
    out["mean"] = sum(bool(r["label"]) for r in rows) / len(rows)
    return out


@dataclass
class LikraEvalConfig:
    """``negtune eval likra`` settings (its flags are these fields): every rule's accuracy on multiple-choice
    questions (``--questions``) or on re-ranking a labeled rollout's samples (``--rollout``)."""

    heads: str = field(metadata={"help": "a `negtune train likra` output folder (positive/, negative/, likra.json)"})
    out: str = field(metadata={"help": "output folder (results.json)"})
    questions: str | None = field(default=None, metadata={
        "help": "multiple-choice file (jsonl/json/csv/parquet): prompt, choices (list of answers), answer (the "
                "index of the right one)"})
    rollout: str | None = field(default=None, metadata={
        "help": "a labeled rollout (`negtune rollout` folder or file): each prompt's best-scored sample is picked"})
    beta: float | None = field(default=None, metadata={"help": "weight of the negative head (default: likra.json's)"})
    normalise: str = field(default="none", metadata={
        "help": "'none' (summed log-probs) or 'chars' (divided by the answer's characters: lm-eval's acc_norm)",
        "choices": ["none", "chars"]})
    batch_size: int = field(default=8, metadata={"help": "sequences per forward pass"})

    def __post_init__(self):
        if (self.questions is None) == (self.rollout is None):
            raise ValueError("give one of --questions (multiple choice) or --rollout (re-rank a rollout's samples)")


def read_questions(path: str) -> list[dict]:
    """Multiple-choice rows, checked: errors name the file, row and column."""
    from negtune.data.io import DataError, read_rows

    rows = read_rows(path)
    for i, row in enumerate(rows):
        choices, answer = row.get("choices"), row.get("answer")
        if "prompt" not in row or not isinstance(choices, list) or len(choices) < 2 or \
                not all(isinstance(c, str) for c in choices):
            raise DataError(f"{path}, row {i}: needs 'prompt' and 'choices' (a list of at least 2 answers as text); "
                            f"columns present: {', '.join(sorted(row))}")
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
            raise DataError(f"{path}, row {i}, column 'answer': expected the index of the right choice "
                            f"(0..{len(choices) - 1}), got {answer!r}")
    return rows


def evaluate_likra(cfg: LikraEvalConfig) -> dict:
    """Score, write ``results.json`` and return it."""
    from negtune.data.io import atomic_write_text
    from negtune.data.rows import training_rows

    scorer = LikraScorer(cfg.heads, beta=cfg.beta, batch_size=cfg.batch_size)
    if cfg.questions is not None:
        data = read_questions(cfg.questions)
        accuracy = multiple_choice_accuracy(scorer, data, cfg.normalise)
        task = "multiple_choice"
    else:
        data = training_rows(cfg.rollout, "labeled", "rollout", extra_columns=("prompt_id",))
        accuracy = rerank_accuracy(scorer, data, cfg.normalise)
        task = "rerank"
    results = {"task": task, "items": len(data), "accuracy": accuracy,
               "settings": asdict(cfg) | {"beta": scorer.beta}}
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(cfg.out) / "results.json", json.dumps(results, indent=2))
    return results
