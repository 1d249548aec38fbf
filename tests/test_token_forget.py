"""Token-level forgetting: influence scores, the global split, the schedule and the loss by hand; the trainer's
split equals one computed from plain forward passes, its loss equals the formula at a given step; full and LoRA
training; the CLI recipes (reference, then forgetting); errors that name the flag or row."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import DataError, write_jsonl
from negtune.data.rows import training_rows
from negtune.losses.token_forget import (
    forgetting_coefficient,
    influence_scores,
    split_tokens,
    token_forget_loss,
)
from negtune.trainers import TokenForgetConfig, TokenForgetTrainer
from negtune.trainers.token_forget_trainer import SPLIT_FILE

COMMON = dict(per_device_train_batch_size=4, use_cpu=True, save_strategy="no", report_to="none",
              disable_tqdm=True, logging_steps=1)
RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "token_forget"


def test_scores_split_schedule_and_loss_by_hand():
    base = torch.tensor([-1.0, -3.0, -0.5, -2.0, -4.0])
    ref = torch.tensor([-0.5, -1.0, -0.5, -2.5, -1.0])
    scores = influence_scores(base, ref)  # l_base - l_ref = log p_ref - log p_base
    assert scores.tolist() == [0.5, 2.0, 0.0, -0.5, 3.0]
    assert split_tokens(scores, 0.7).tolist() == [True, True, False, False, True]  # floor(3.5) = 3 highest
    assert split_tokens(scores, 1.0).all() and not split_tokens(scores, 0.0).any()
    assert split_tokens(torch.zeros(4), 0.5).tolist() == [True, True, False, False]  # ties: earlier token first
    with pytest.raises(ValueError, match="rho"):
        split_tokens(scores, 1.5)
    assert forgetting_coefficient(0, 10) == 0.0
    assert forgetting_coefficient(5, 10, 0.05, 0.25) == pytest.approx(0.1)  # (0.25 - 0.05) * 5 / 10
    assert forgetting_coefficient(10, 10) == pytest.approx(0.25 - 1e-5) and forgetting_coefficient(3, 0) == 0.0
    logps = torch.tensor([[-1.0, -2.0, -4.0], [-0.5, -3.0, -9.0]], requires_grad=True)
    pos = torch.tensor([[1, 0, 0], [1, 0, 0]], dtype=torch.bool)
    neg = torch.tensor([[0, 1, 1], [0, 1, 0]], dtype=torch.bool)
    loss = token_forget_loss(logps, pos, neg, 0.2)
    assert loss.item() == pytest.approx((1 + 0.5) / 2 - 0.2 * (2 + 4 + 3) / 3)
    loss.backward()
    assert torch.allclose(logps.grad, -pos.float() / 2 + 0.2 * neg.float() / 3)
    assert token_forget_loss(logps.detach(), pos, torch.zeros_like(neg), 0.2).item() == pytest.approx(0.75)


def _reference(tiny_model_dir, tmp_path) -> str:
    """A reference that differs from the base: the tiny model with its output layer perturbed."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.get_output_embeddings().parameters():
            p.add_(0.5 * torch.randn_like(p))
    out = tmp_path / "ref"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return str(out)


def _token_logps(model_dir, ids, labels) -> list[float]:
    """log p of each answer token of one example, from a plain forward pass."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1], -1)
    return [logp[j - 1, y].item() for j, y in enumerate(labels) if y != -100]


def test_trainer_split_and_loss_match_the_formula(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = _reference(tiny_model_dir, tmp_path)
    every = labeled_rollout.to_list()
    rows = [dict(r, label=True) for r in every[:6]] + [dict(r, label=False) for r in every[6:9]]  # positives used
    args = TokenForgetConfig(output_dir=str(tmp_path / "o"), max_steps=10, reference_model=ref, **COMMON)
    trainer = TokenForgetTrainer(str(tiny_model_dir), args, train_dataset=rows, processing_class=tok)
    data = trainer.train_dataset
    assert len(data) == 6
    scores, where = [], []
    for i, item in enumerate(data):
        labels = [p if p != -100 else n for p, n in zip(item["labels"], item["negative_labels"])]
        assert not any(p != -100 and n != -100 for p, n in zip(item["labels"], item["negative_labels"]))
        base = _token_logps(tiny_model_dir, item["input_ids"], labels)
        refl = _token_logps(ref, item["input_ids"], labels)
        scores += [r - b for b, r in zip(base, refl)]
        where += [(i, j) for j, y in enumerate(labels) if y != -100]
    cut = int(len(scores) * 0.7)
    top = set(sorted(range(len(scores)), key=lambda k: -scores[k])[:cut])
    got = {k for k, (i, j) in enumerate(where) if data[i]["labels"][j] != -100}
    assert len(got) == cut and len(got ^ top) <= 2  # equal up to float ties at the threshold
    split = trainer._split
    assert (split["positive_tokens"], split["negative_tokens"]) == (cut, len(scores) - cut)
    assert split["mean_score"]["positive"] > split["mean_score"]["negative"]
    # the loss at step 5 of 10: positive NLL mean - lambda(5) * negative NLL mean, by hand
    trainer.state.global_step, trainer.state.max_steps = 5, 10
    batch = trainer.data_collator([data[i] for i in range(4)])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        got_loss = trainer.compute_loss(trainer.model, batch).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ce = lambda labels: torch.nn.functional.cross_entropy(  # noqa: E731
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100).item()
    lam = (0.25 - 1e-5) * 5 / 10
    assert got_loss == pytest.approx(ce(batch["labels"]) - lam * ce(batch["negative_labels"]), rel=1e-5)
    args.negative_tokens = "ignore"
    with torch.no_grad():
        assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(ce(batch["labels"]), rel=1e-5)


def test_trains_full_and_lora(tiny_model_dir, labeled_rollout, tmp_path):
    from peft import LoraConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = _reference(tiny_model_dir, tmp_path)
    full = TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(
        output_dir=str(tmp_path / "full"), max_steps=3, learning_rate=1e-3, reference_model=ref, **COMMON),
        train_dataset=labeled_rollout, processing_class=tok)
    before = {n: p.detach().clone() for n, p in full.model.named_parameters()}
    full.train()
    assert all(not torch.equal(before[n], p) for n, p in full.model.named_parameters() if "embed" not in n)
    logs = [h for h in full.state.log_history if "forget_weight" in h]
    assert [h["forget_weight"] for h in logs] == pytest.approx([(0.25 - 1e-5) * s / 3 for s in range(3)])
    assert all("negative_nll" in h and "positive_nll" in h for h in logs)
    full.save_model()
    split = json.loads((tmp_path / "full" / SPLIT_FILE).read_text())
    assert split["reference_model"] == ref and split["negative_tokens"] > 0 and split["most_forgotten"]
    assert "token_forget" in (tmp_path / "full" / "README.md").read_text()
    lora = TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(
        output_dir=str(tmp_path / "lora"), max_steps=2, learning_rate=1e-2, reference_model=ref, **COMMON),
        train_dataset=labeled_rollout, processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in lora.model.named_parameters()}
    lora.train()
    changed = {n for n, p in lora.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)
    # rho 1: plain SFT, no reference, every answer token positive
    sft = TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(output_dir=str(tmp_path / "sft"), max_steps=1,
                                                                    rho=1.0, **COMMON),
                             train_dataset=labeled_rollout, processing_class=tok)
    assert all(all(y == -100 for y in item["negative_labels"]) for item in sft.train_dataset)


def test_bad_input_is_named(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"prompt": "1+1?", "completion": "The answer is \\boxed{2}."}]
    with pytest.raises(DataError, match="needs --reference_model"):
        TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(output_dir="x", use_cpu=True), train_dataset=rows,
                           processing_class=tok)
    for bad, match in (({"rho": 1.2}, "--rho"), ({"negative_tokens": "drop", "rho": 1.0}, "negative_tokens"),
                       ({"lambda_min": 0.5, "rho": 1.0}, "lambda_min")):
        with pytest.raises(ValueError, match=match):
            TokenForgetConfig(output_dir="x", use_cpu=True, **bad)
    assert training_rows(rows, "sft") == rows  # no label column: fine-tuning text
    write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"prompt": "2+2?"}])
    with pytest.raises(DataError, match=r"bad.jsonl, row 1: .*prompt and completion"):
        training_rows(str(tmp_path / "bad.jsonl"), "sft")
    with pytest.raises(DataError, match="every row is labeled false"):
        training_rows([dict(rows[0], label=False)], "sft")
    with pytest.raises(DataError, match="--reference_model .*nowhere"):
        TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(output_dir=str(tmp_path / "o"),
                                                                  reference_model=str(tmp_path / "nowhere"), **COMMON),
                           train_dataset=rows, processing_class=tok)
    other = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    other.resize_token_embeddings(other.get_input_embeddings().num_embeddings + 8)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(DataError, match="--reference_model .*vocabulary"):
        TokenForgetTrainer(str(tiny_model_dir), TokenForgetConfig(output_dir=str(tmp_path / "o"),
                                                                  reference_model=str(tmp_path / "other"), **COMMON),
                           train_dataset=rows, processing_class=tok)


def test_cli_recipes_reference_then_forgetting(tiny_model_dir, labeled_rollout, tmp_path):
    from negtune.cli import main

    labeled_rollout.to_parquet(str(tmp_path / "ro.parquet"))
    common = ["--model_name_or_path", str(tiny_model_dir), "--dataset", str(tmp_path / "ro.parquet"),
              "--max_steps", "2", "--disable_tqdm", "true"]
    ref = tmp_path / "ref"
    assert main(["train", "token_forget", "--config", str(RECIPES / "tiny-reference.yaml"), *common,
                 "--output_dir", str(ref)]) == 0
    assert json.loads((ref / SPLIT_FILE).read_text())["negative_tokens"] == 0
    out = tmp_path / "forget"
    assert main(["train", "token_forget", "--config", str(RECIPES / "tiny.yaml"), *common,
                 "--reference_model", str(ref), "--output_dir", str(out)]) == 0
    split = json.loads((out / SPLIT_FILE).read_text())
    assert split["rho"] == 0.7 and split["negative_tokens"] > 0
    assert (out / "adapter_model.safetensors").exists()
