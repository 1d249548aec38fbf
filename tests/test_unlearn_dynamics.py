"""Unlearning training dynamics against open-unlearning (issue 13, items 5 and 6): the retain partner of a forget
example is drawn afresh at every access, reproducibly; NPO+KL's KL is averaged as open-unlearning's
``compute_kl_divergence``; SimNPO's defaults and margin form reach the trainer's loss."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from negtune import methods
from negtune.data.prompts import encode_prompt_completion
from negtune.losses import sequence_logps, simnpo_loss
from negtune.trainers import UnlearnConfig, UnlearnTrainer

COMMON = dict(learning_rate=1e-4, use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True,
              report_to="none")


def _retain_seen(trainer) -> list[tuple[int, tuple[int, ...]]]:
    """Record (optimizer step, retain token ids) for every retain example the trainer's loss reads."""
    seen, inner = [], trainer._nll_and_logps

    def spy(model, inputs, prefix):
        if prefix == "retain":
            for ids, att in zip(inputs["retain_input_ids"], inputs["retain_attention_mask"]):
                seen.append((trainer.state.global_step, tuple(ids[att.bool()].tolist())))
        return inner(model, inputs, prefix)

    trainer._nll_and_logps = spy
    return seen


def _graddiff(model_dir, tofu, tmp_path, name, forget="forget10", **kw):
    tok = AutoTokenizer.from_pretrained(model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / name), method="graddiff", **{**COMMON, **kw})
    trainer = UnlearnTrainer(str(model_dir), args, forget_dataset=tofu[forget],
                             retain_dataset=tofu["retain90"], processing_class=tok)
    return trainer, _retain_seen(trainer)


def test_retain_partner_is_drawn_afresh_at_every_access(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """10 forget examples, 180 retain examples, 4 epochs: a fixed pairing shows 10 retain examples, per-access
    draws about 180 (1 - (179/180)^40) = 36. The same seed draws the same pairs; another seed other pairs."""
    kw = dict(forget="forget05", per_device_train_batch_size=10, max_steps=4, seed=3)
    first, seen = _graddiff(tiny_facts_model_dir, synthetic_tofu, tmp_path, "a", **kw)
    first.train()
    assert len(seen) == 40
    assert len({ids for _, ids in seen}) > 20  # the fixed pairing: exactly 10
    again, seen_again = _graddiff(tiny_facts_model_dir, synthetic_tofu, tmp_path, "b", **kw)
    again.train()
    assert seen_again == seen
    other, seen_other = _graddiff(tiny_facts_model_dir, synthetic_tofu, tmp_path, "c", **{**kw, "max_steps": 1,
                                                                                          "seed": 4})
    other.train()
    assert {ids for _, ids in seen_other} != {ids for step, ids in seen if step == 0}


def test_retain_draws_survive_a_mid_epoch_resume(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """The draw is a function of (seed, step, forget index): a run resumed at step 3 (mid-epoch: 4 steps of 5 per
    epoch) pairs steps 4-6 as the uninterrupted run did."""
    kw = dict(per_device_train_batch_size=5, max_steps=6, seed=5, save_strategy="steps", save_steps=3)
    whole, seen = _graddiff(tiny_facts_model_dir, synthetic_tofu, tmp_path, "whole", **kw)
    whole.train()
    resumed, seen_resumed = _graddiff(tiny_facts_model_dir, synthetic_tofu, tmp_path, "resumed", **kw)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-3"))
    assert seen_resumed and seen_resumed == [s for s in seen if s[0] >= 3]


@pytest.mark.parametrize("reduction", ["batchmean", "answer_mean"])
def test_npo_kl_retain_kl_is_averaged_as_configured(reduction, tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """With pi_theta perturbed away from pi_ref, the logged retain KL equals open-unlearning's
    F.kl_div(log pi.view(-1, V), log pi_ref.view(-1, V), "batchmean", log_target=True) over every position of
    the padded retain batch (default), or the mean over its answer tokens (``kl_reduction="answer_mean"``)."""
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method="npo_kl", ref_cache_dir=str(tmp_path / "c"),
                         per_device_train_batch_size=6, **COMMON,
                         **({} if reduction == "batchmean" else {"kl_reduction": reduction}))
    trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                             retain_dataset=synthetic_tofu["retain90"], processing_class=tok)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    calls, ref_forward = [], trainer.ref_model.forward
    trainer.ref_model.forward = lambda **kw: calls.append(kw) or ref_forward(**kw)
    inputs = next(iter(trainer.get_train_dataloader()))
    trainer.compute_loss(trainer.model, inputs)
    (call,) = calls  # pi_ref runs once, on the retain batch
    ids, att = call["input_ids"], call["attention_mask"]
    assert not att.all()  # the batch has padding, and every row a prompt: the two averages differ
    with torch.no_grad():
        pol = trainer.model(input_ids=ids, attention_mask=att).logits.log_softmax(-1)
        ref = ref_forward(input_ids=ids, attention_mask=att).logits.log_softmax(-1)
    V = pol.shape[-1]
    if reduction == "batchmean":
        expected = F.kl_div(pol.view(-1, V), ref.view(-1, V), reduction="batchmean", log_target=True)
    else:
        labels = {tuple(i): lab for i, lab in (encode_prompt_completion(tok, r["question"], r["answer"], 512)
                                               for r in synthetic_tofu["retain90"])}
        answer = torch.zeros(ids.shape, dtype=torch.bool)  # positions that predict an answer token
        for b, row in enumerate(ids):
            lab = labels[tuple(row[att[b].bool()].tolist())]
            answer[b, : len(lab) - 1] = torch.tensor(lab[1:]) != -100
        kl = (ref.exp() * (ref - pol)).sum(-1)
        expected = kl[answer].mean()
    assert trainer._metrics["retain_kl"][-1] == pytest.approx(expected.item(), rel=1e-4)


def test_simnpo_defaults_and_margin_form_reach_the_loss(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """A config built in Python (``methods.make_config("simnpo")``) gets beta 2.5 and the reference code's margin
    form; the trainer's loss is (2/beta) softplus(beta log pi/|y| + beta delta) on the batch, or + delta with
    ``simnpo_delta_form="paper"``."""
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    losses = {}
    for form in ("reference", "paper"):
        args = methods.make_config("simnpo", output_dir=str(tmp_path / form), simnpo_delta=0.5,
                                   per_device_train_batch_size=4, **COMMON,
                                   **({} if form == "reference" else {"simnpo_delta_form": form}))
        assert (args.beta, args.simnpo_delta_form) == (2.5, form)
        trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                                 processing_class=tok)
        inputs = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, inputs).item()
            logits = trainer.model(input_ids=inputs["forget_input_ids"],
                                   attention_mask=inputs["forget_attention_mask"]).logits
            logps, n = sequence_logps(logits, inputs["forget_labels"])
        margin = 2.5 * 0.5 if form == "reference" else 0.5
        hand = (0.8 * F.softplus(2.5 * logps / n + margin)).mean().item()
        assert loss == pytest.approx(hand, rel=1e-4)
        assert loss == pytest.approx(simnpo_loss(logps, n, 2.5, 0.5, form).item(), rel=1e-4)
        losses[form] = loss
    assert losses["reference"] > losses["paper"]  # beta * delta = 1.25 > 0.5


def test_system_prompt_reaches_the_training_sequences(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """``system_prompt`` (the TOFU recipes: open-unlearning's) is rendered before every forget and retain
    question, exactly as ``negtune eval tofu --system-prompt`` renders it."""
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    system = "You are a helpful assistant."
    args = UnlearnConfig(output_dir=str(tmp_path), method="graddiff", system_prompt=system, **COMMON)
    trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget05"],
                             retain_dataset=synthetic_tofu["retain90"], processing_class=tok)
    row = synthetic_tofu["forget05"][0]
    ids, _ = encode_prompt_completion(tok, row["question"], row["answer"], args.max_length, system_prompt=system)
    assert trainer.train_dataset[0]["forget_input_ids"] == ids
    assert ids != encode_prompt_completion(tok, row["question"], row["answer"], args.max_length)[0]
