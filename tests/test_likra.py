"""Likra: the score by hand, the one-head-per-batch sampler, the two heads' training, the saved pair and the scorer."""

import json

import pytest
import torch
from peft import LoraConfig
from transformers import AutoTokenizer

from negtune.data.io import DataError
from negtune.evaluation.likra import (
    LikraScorer,
    choose,
    multiple_choice_accuracy,
    rerank_accuracy,
    rule_scores,
)
from negtune.losses.likra import likra_score
from negtune.trainers import LikraConfig, LikraTrainer
from negtune.trainers.likra_trainer import HeadBatchSampler

LORA = dict(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"])
COMMON = dict(per_device_train_batch_size=4, use_cpu=True, save_strategy="no", report_to="none", disable_tqdm=True,
              logging_steps=1, learning_rate=1e-2)


def test_score_by_hand():
    pos, neg = torch.tensor([-1.0, -5.0]), torch.tensor([-3.0, -2.0])
    assert likra_score(pos, neg).tolist() == [2.0, -3.0]
    assert likra_score(pos, neg, beta=0.5).tolist() == [0.5, -4.0]
    assert likra_score(pos, neg, lengths=torch.tensor([2, 3])).tolist() == [1.0, -1.0]
    logps = {"positive": pos, "negative": neg, "base": torch.tensor([-4.0, -1.0])}
    s = rule_scores(logps, ["ab", "abc"], beta=1.0)
    assert s["likra"].tolist() == [2.0, -3.0] and s["base_likra"].tolist() == [-1.0, 1.0]
    assert rule_scores(logps, ["ab", "abc"], normalise="chars")["positive"].tolist() == [-0.5, -5 / 3]
    assert choose(torch.tensor([0.1, 0.3, -1.0, 2.0, 2.0]), ["a", "a", "b", "b", "b"]) == {"a": 1, "b": 3}
    with pytest.raises(ValueError, match="normalise"):
        rule_scores(logps, ["a", "b"], normalise="tokens")


def test_every_micro_batch_trains_one_head():
    labels = [True] * 5 + [False] * 11
    for world in (1, 2):
        sampler = HeadBatchSampler(labels, batch_size=3, world_size=world, seed=0)
        order = list(sampler)
        assert len(order) == len(sampler)
        batches = [order[k : k + 3] for k in range(0, len(order), 3)]
        heads = [{labels[i] for i in b} for b in batches]
        assert all(len(h) == 1 for h in heads)  # never a mixed micro-batch
        steps = [heads[k : k + world] for k in range(0, len(heads), world)]
        assert all(len({frozenset(h) for h in s}) == 1 for s in steps)  # every process: the same head at a step
        assert set(order) == set(range(16))  # every example, each epoch
        assert heads[0] == {True} and heads[world] == {False}  # alternating
    for world, accumulation in ((1, 2), (2, 2), (2, 3)):  # one head per optimizer step, on every process
        sampler = HeadBatchSampler(labels, 3, world, seed=0, accumulation=accumulation)
        order = list(sampler)
        assert len(order) == len(sampler) and set(order) == set(range(16))
        batches = [order[k : k + 3] for k in range(0, len(order), 3)]
        per_step = world * accumulation  # batch i goes to process i % world; a step is `accumulation` of its own
        for k in range(0, len(batches), per_step):
            assert len({labels[i] for b in batches[k : k + per_step] for i in b}) == 1
    sampler = HeadBatchSampler(labels, 3, 1, seed=0)
    first, second = list(sampler), list(sampler)
    assert first != second
    sampler.set_epoch(0)
    assert list(sampler) == first
    # the epoch comes from the trainer's state (accelerate's sharded loader never forwards set_epoch to it):
    # a resumed run at epoch 1.5 draws epoch 1's order; an epoch that starts where the last ended (2 - rounding)
    # draws epoch 2's
    from types import SimpleNamespace

    from negtune.trainers.likra_trainer import _SamplerEpoch

    holder = SimpleNamespace(_head_sampler=sampler)
    for state_epoch, expect in ((1.5, 1), (2 - 1e-12, 2), (0.0, 0)):
        _SamplerEpoch(holder).on_epoch_begin(None, SimpleNamespace(epoch=state_epoch), None)
        assert sampler.epoch == expect
    assert list(HeadBatchSampler([False] * 4, 2, 1, seed=0)) and len(HeadBatchSampler([True] * 4, 2, 1, 0)) == 4


def test_heads_learn_their_own_examples_and_the_base_stays(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(DataError, match="two LoRA adapters"):
        LikraTrainer(str(tiny_model_dir), LikraConfig(output_dir=str(tmp_path / "x"), **COMMON),
                     train_dataset=labeled_rollout, processing_class=tok)
    trainer = LikraTrainer(str(tiny_model_dir), LikraConfig(output_dir=str(tmp_path / "o"), max_steps=4, **COMMON),
                           train_dataset=labeled_rollout, processing_class=tok, peft_config=LoraConfig(**LORA))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)  # the base is untouched
    assert any(".positive." in n for n in changed) and any(".negative." in n for n in changed)
    logged = {k for h in trainer.state.log_history for k in h}
    assert {"positive_nll", "negative_nll"} <= logged
    # each head learnt its own examples: on the positives the positive head beats the negative head, and the
    # other way round on the negatives
    model = trainer.model
    pos_batch = trainer.data_collator([x for x in trainer.train_dataset if x["is_positive"]][:8])
    neg_batch = trainer.data_collator([x for x in trainer.train_dataset if not x["is_positive"]][:8])
    nll = {}
    with torch.no_grad():
        for head in ("positive", "negative"):
            model.set_adapter(head)
            for name, batch in (("pos", pos_batch), ("neg", neg_batch)):
                nll[head, name] = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    assert nll["positive", "pos"] < nll["negative", "pos"] and nll["negative", "neg"] < nll["positive", "neg"]
    # negatives only: the positive head never trains (it stays the base: BASE-LIKRA)
    negatives = labeled_rollout.filter(lambda r: not r["label"])
    only = LikraTrainer(str(tiny_model_dir), LikraConfig(output_dir=str(tmp_path / "n"), max_steps=2, **COMMON),
                        train_dataset=negatives, processing_class=tok, peft_config=LoraConfig(**LORA))
    before = {n: p.detach().clone() for n, p in only.model.named_parameters()}
    only.train()
    changed = {n for n, p in only.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and not any(".positive." in n for n in changed)


def test_saved_heads_score_as_their_parts(tiny_model_dir, labeled_rollout, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from negtune.data.prompts import encode_prompt_completion
    from negtune.trainers.reference import compute_reference_logps

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = tmp_path / "likra"
    trainer = LikraTrainer(str(tiny_model_dir), LikraConfig(output_dir=str(out), max_steps=4, beta=0.5, **COMMON),
                           train_dataset=labeled_rollout, processing_class=tok, peft_config=LoraConfig(**LORA))
    trainer.train()
    trainer.save_model()
    manifest = json.loads((out / "likra.json").read_text())
    assert manifest["beta"] == 0.5 and (out / "positive" / "adapter_model.safetensors").exists()
    assert (out / "negative" / "adapter_model.safetensors").exists()
    rows = labeled_rollout.to_list()[:12]
    scorer = LikraScorer(out)
    assert scorer.beta == 0.5
    logps = scorer.head_logps([r["prompt"] for r in rows], [r["completion"] for r in rows])
    encoded = [encode_prompt_completion(tok, r["prompt"], r["completion"]) for r in rows]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    expect = compute_reference_logps(base, encoded, tok.pad_token_id)
    assert torch.allclose(logps["base"], torch.tensor(expect, dtype=torch.float64), atol=1e-4)
    for head in ("positive", "negative"):  # each head alone, loaded the ordinary way (a LoRA folder as --model)
        alone = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out / head))
        expect = compute_reference_logps(alone, encoded, tok.pad_token_id, adapter=True)
        assert torch.allclose(logps[head], torch.tensor(expect, dtype=torch.float64), atol=1e-4), head
    assert not torch.allclose(logps["positive"], logps["negative"])
    s = scorer.scores([r["prompt"] for r in rows], [r["completion"] for r in rows])
    assert torch.allclose(s["likra"], logps["positive"] - 0.5 * logps["negative"])
    questions = [{"prompt": r["prompt"], "choices": [r["completion"], "The answer is \\boxed{0}."], "answer": 0}
                 for r in rows[:4]]
    acc = multiple_choice_accuracy(scorer, questions)
    assert set(acc) == {"likra", "positive", "base_likra", "base"} and all(0 <= v <= 1 for v in acc.values())
    rr = rerank_accuracy(scorer, labeled_rollout.to_list())
    assert 0 <= rr["likra"] <= 1 and rr["mean"] == pytest.approx(sum(labeled_rollout["label"]) / len(labeled_rollout))
    # the command line: multiple choice and re-ranking, bad rows named
    from negtune.cli import main
    from negtune.data.io import write_jsonl

    write_jsonl(tmp_path / "mc.jsonl", questions)
    assert main(["eval", "likra", "--heads", str(out), "--questions", str(tmp_path / "mc.jsonl"), "--out",
                 str(tmp_path / "e1"), "--normalise", "chars"]) == 0
    r = json.loads((tmp_path / "e1" / "results.json").read_text())
    assert r["task"] == "multiple_choice" and r["items"] == 4 and set(r["accuracy"]) == set(acc)
    labeled_rollout.to_parquet(str(tmp_path / "ro.parquet"))
    assert main(["eval", "likra", "--heads", str(out), "--rollout", str(tmp_path / "ro.parquet"), "--out",
                 str(tmp_path / "e2"), "--beta", "1.0"]) == 0
    r = json.loads((tmp_path / "e2" / "results.json").read_text())
    assert r["task"] == "rerank" and r["accuracy"]["mean"] == pytest.approx(rr["mean"]) and r["settings"]["beta"] == 1
    write_jsonl(tmp_path / "bad.jsonl", [questions[0], {**questions[1], "answer": 5}])
    capsys.readouterr()
    assert main(["eval", "likra", "--heads", str(out), "--questions", str(tmp_path / "bad.jsonl"), "--out",
                 str(tmp_path / "e3")]) == 2
    assert "bad.jsonl, row 1, column 'answer'" in capsys.readouterr().err
    assert main(["eval", "likra", "--heads", str(out), "--out", str(tmp_path / "e4")]) == 2
    assert "give one of --questions" in capsys.readouterr().err


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_model_dir, labeled_rollout, tmp_path):
    """Both heads are in the optimizer after a resume (PEFT's loading freezes the inactive one), and the sampler
    draws the resumed epoch's order (the checkpoint falls inside a later epoch)."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = labeled_rollout.select(range(20))
    common = {**COMMON, "save_strategy": "steps", "save_steps": 8, "max_steps": 11, "per_device_train_batch_size": 4}

    def run(out, resume=None):
        trainer = LikraTrainer(str(tiny_model_dir), LikraConfig(output_dir=str(out), **common), train_dataset=data,
                               processing_class=tok, peft_config=LoraConfig(**LORA))
        trainer.train(resume_from_checkpoint=resume)
        return trainer, {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}

    full, weights = run(tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "checkpoint-8" / "trainer_state.json").read_text())
    assert 1 < saved["epoch"] < full.state.epoch  # the checkpoint falls inside a later epoch than the first
    _, resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-8"))
    assert weights.keys() == resumed.keys()
    for name in weights:
        assert torch.allclose(weights[name], resumed[name], atol=1e-6), name
