"""Adaptive self-consistency (ASC), the inference stage of negative-assisted distillation (Li et al. 2024,
:mod:`negtune.losses.negassist`): a ranking model trained on a model's right and wrong samples weights each
sample's vote in self-consistency.

The ranker, as the authors' ``RM/models_ft5.py`` builds it: a transformer backbone reads question + sample,
its last hidden states are averaged over the sample's tokens, and a pooler (two residual ELU layers, then a
linear layer and a sigmoid) gives a score s in (0, 1). It is trained on pairs of one question's samples, one
right and one wrong drawn at random per question and step, with (1 - s+)^p + (s-)^p (p = 3), AdamW (weight
decay 1e-5) and a cosine decay of the rate to 2% of it. Their backbone is Flan-T5-XL's encoder; negtune's is
any transformers model folder (by default the base model the samples came from), all of it trained. ``negtune eval asc`` trains one from
a labeled rollout (``--train``) and re-votes a ``negtune eval math`` folder's samples with it.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from negtune.data.io import DataError, atomic_write_text
from negtune.losses.negassist import VOTE_RULES, ranking_loss, weighted_vote

logger = logging.getLogger(__name__)

RANKER_FILE = "asc_ranker.json"
HEAD_FILE = "asc_head.safetensors"


class Ranker(nn.Module):
    """score(question, sample) = sigmoid(w . pooler(mean of the backbone's last hidden states over the sample))."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        d = backbone.config.hidden_size
        self.dense1, self.dense2, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 1)

    def forward(self, input_ids, attention_mask, sample_mask) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = sample_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        h = pooled + nn.functional.elu(self.dense1(pooled))
        h = h + nn.functional.elu(self.dense2(h))
        return torch.sigmoid(self.out(h)).squeeze(-1)


@dataclass
class RankerConfig:
    """How a ranker is trained (the authors: 5 epochs, one question per step, lr 2e-5, p = 3)."""

    backbone: str = ""
    epochs: int = 5
    questions_per_step: int = 1
    learning_rate: float = 2e-5
    power: float = 3.0
    max_length: int = 512
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.questions_per_step < 1 or self.learning_rate <= 0:
            raise ValueError("the ranker needs --epochs >= 1, --questions_per_step >= 1 and a positive learning rate")


def _encode(tok, prompt, completion: str, max_length: int) -> tuple[list[int], list[bool]]:
    from negtune.data.prompts import encode_prompt_completion

    ids, labels = encode_prompt_completion(tok, prompt, completion, max_length)
    return list(ids), [y != -100 for y in labels]


def _batch(encoded: list[tuple[list[int], list[bool]]], pad: int, device) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in encoded)
    return {"input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in encoded], device=device),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded],
                                           device=device),
            "sample_mask": torch.tensor([m + [False] * (width - len(m)) for _, m in encoded], device=device)}


def train_ranker(rows: list[dict], out: str | Path, cfg: RankerConfig, device: str = "cpu") -> dict:
    """Train on a labeled rollout's rows (prompt, completion, label; grouped by prompt) and save to ``out``."""
    from safetensors.torch import save_file
    from transformers import AutoModel

    from negtune.models.loading import load_tokenizer

    groups: dict[str, dict[bool, list[str]]] = {}
    prompts: dict[str, object] = {}
    for r in rows:
        key = json.dumps(r["prompt"], sort_keys=True)
        prompts[key] = r["prompt"]
        groups.setdefault(key, {True: [], False: []})[bool(r["label"])].append(r["completion"])
    pairable = [k for k, g in groups.items() if g[True] and g[False]]
    if not pairable:
        raise DataError(f"asc: no question of the {len(rows)} training rows has both a right and a wrong sample")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = load_tokenizer(cfg.backbone)
    ranker = Ranker(AutoModel.from_pretrained(cfg.backbone, use_safetensors=True, dtype=torch.float32)).to(device)
    opt = torch.optim.AdamW(ranker.parameters(), lr=cfg.learning_rate, weight_decay=1e-5)
    steps = cfg.epochs * math.ceil(len(pairable) / cfg.questions_per_step)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    losses = []
    ranker.train()
    for _ in range(cfg.epochs):
        order = rng.sample(pairable, len(pairable))
        for start in range(0, len(order), cfg.questions_per_step):
            keys = order[start:start + cfg.questions_per_step]
            pos = [_encode(tok, prompts[k], rng.choice(groups[k][True]), cfg.max_length) for k in keys]
            neg = [_encode(tok, prompts[k], rng.choice(groups[k][False]), cfg.max_length) for k in keys]
            scores = ranker(**_batch(pos + neg, tok.pad_token_id, device))
            loss = ranking_loss(scores[:len(keys)], scores[len(keys):], cfg.power)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    out = Path(out)
    ranker.backbone.save_pretrained(out / "backbone")
    tok.save_pretrained(out / "backbone")
    save_file({k: v.contiguous() for k, v in ranker.state_dict().items() if not k.startswith("backbone.")},
              str(out / HEAD_FILE))
    info = {"config": asdict(cfg), "questions": len(pairable), "steps": steps,
            "first_loss": sum(losses[:10]) / len(losses[:10]), "last_loss": sum(losses[-10:]) / len(losses[-10:])}
    atomic_write_text(out / RANKER_FILE, json.dumps(info, indent=2) + "\n")
    return info


class RankerScorer:
    """A saved ranker, for scoring samples: ``RankerScorer(folder).scores(prompt, completions)``."""

    def __init__(self, folder: str | Path, device: str = "cpu", batch_size: int = 8):
        from safetensors.torch import load_file
        from transformers import AutoModel

        from negtune.models.loading import load_tokenizer

        folder = Path(folder)
        if not (folder / RANKER_FILE).is_file():
            raise DataError(f"--ranker {folder}: not a ranker folder (no {RANKER_FILE}); train one with --train")
        self.info = json.loads((folder / RANKER_FILE).read_text())
        self.cfg = RankerConfig(**self.info["config"])
        self.tok = load_tokenizer(str(folder / "backbone"))
        backbone = AutoModel.from_pretrained(str(folder / "backbone"), use_safetensors=True, dtype=torch.float32)
        self.ranker = Ranker(backbone)
        self.ranker.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=False)
        self.ranker.to(device).eval()
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def scores(self, prompt, completions: list[str]) -> list[float]:
        out = []
        for start in range(0, len(completions), self.batch_size):
            enc = [_encode(self.tok, prompt, c, self.cfg.max_length) for c in completions[start:start + self.batch_size]]
            out += self.ranker(**_batch(enc, self.tok.pad_token_id, self.device)).tolist()
        return out


def asc_accuracy(problems: list[dict], scorer: RankerScorer, rule: str = "score") -> dict:
    """Re-vote ``negtune eval math`` sample records (prompt, completions, correct, answer_cluster per problem):
    ASC accuracy next to plain majority voting and avg@n on the same samples."""
    if rule not in VOTE_RULES:
        raise ValueError(f"--rule must be one of {', '.join(VOTE_RULES)}, got {rule!r}")
    asc = maj = avg = 0.0
    for p in problems:
        scores = scorer.scores(p["prompt"], p["completions"])
        pick = weighted_vote(p["answer_cluster"], scores, rule)
        vote = weighted_vote(p["answer_cluster"], scores, "count")
        asc += bool(pick is not None and p["correct"][pick])
        maj += bool(vote is not None and p["correct"][vote])
        avg += sum(p["correct"]) / max(1, len(p["correct"]))
    n = max(1, len(problems))
    return {"asc": asc / n, "maj": maj / n, "avg": avg / n, "problems": len(problems)}


@dataclass
class AscEvalConfig:
    """``negtune eval asc`` settings: re-vote an evaluation's samples with a ranking model (trained here from a
    labeled rollout when ``--train`` is given and ``--ranker`` holds none yet)."""

    samples: str = field(metadata={"help": "a `negtune eval math` output folder (samples.jsonl) or its samples file"})
    ranker: str = field(metadata={"help": "the ranker folder (read, or written when --train is given)"})
    out: str = field(metadata={"help": "output folder (results.json)"})
    train: str | None = field(default=None, metadata={
        "help": "a labeled rollout of the model on *training* questions: trains the ranker when --ranker is empty"})
    backbone: str | None = field(default=None, metadata={"help": "the ranker's backbone model (default: the "
                                                                 "model the samples came from)"})
    rule: str = field(default="score", metadata={"help": "vote weight: count, score, one_plus_score, "
                                                         "one_plus_two_score", "choices": list(VOTE_RULES)})
    epochs: int = field(default=5, metadata={"help": "ranker training epochs"})
    learning_rate: float = field(default=2e-5, metadata={"help": "ranker learning rate"})
    questions_per_step: int = field(default=1, metadata={"help": "questions (one pair each) per ranker step"})
    seed: int = field(default=0, metadata={"help": "ranker training seed"})


def evaluate_asc(cfg: AscEvalConfig) -> dict:
    from negtune.data.io import read_rows
    from negtune.data.rows import training_rows

    path = Path(cfg.samples)
    path = path / "samples.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"--samples {cfg.samples}: no samples.jsonl (a `negtune eval math` output)")
    problems = read_rows(path)
    for i, p in enumerate(problems):
        if not all(k in p for k in ("prompt", "completions", "correct", "answer_cluster")):
            raise DataError(f"{path}, row {i}: not a `negtune eval math` sample record (needs prompt, completions, "
                            "correct, answer_cluster)")
    trained = None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if (Path(cfg.ranker) / RANKER_FILE).is_file() and cfg.train is not None:
        logger.warning("asc: --ranker %s holds a trained ranker; it is used as is and --train is not read",
                       cfg.ranker)
    if not (Path(cfg.ranker) / RANKER_FILE).is_file():
        if cfg.train is None:
            raise DataError(f"--ranker {cfg.ranker}: no ranker there; give --train ROLLOUT to train one")
        backbone = cfg.backbone or _samples_model(path)
        trained = train_ranker(training_rows(cfg.train, "labeled", "train", flag="train"), cfg.ranker,
                               RankerConfig(backbone=backbone, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                            questions_per_step=cfg.questions_per_step, seed=cfg.seed), device)
    result = {"accuracy": asc_accuracy(problems, RankerScorer(cfg.ranker, device), cfg.rule), "settings": asdict(cfg),
              "ranker_training": trained}
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(cfg.out) / "results.json", json.dumps(result, indent=2))
    return result


def _samples_model(samples: Path) -> str:
    results = samples.parent / "results.json"
    if results.is_file():
        model = json.loads(results.read_text())["settings"].get("model")
        if model:
            from negtune.models import integrate

            if integrate.is_negassist(model):  # its base: the ranker's backbone is a plain transformer
                return integrate.read_config(model).base_model
            from negtune.models.loading import resolve_adapter

            return resolve_adapter(model)[0]
    raise DataError(f"--samples {samples}: cannot tell which model made them; pass --backbone")
