"""The offline trainers train the tiny model for real: full-parameter and LoRA, outputs, bad input."""

import math

import pytest
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.losses import sequence_logps
from negtune.trainers import (
    UNLEARN_METHODS,
    ContrastiveRationaleConfig,
    ContrastiveRationaleTrainer,
    NonFiniteLossError,
    UnlearnConfig,
    UnlearnTrainer,
    UnlikelihoodConfig,
    UnlikelihoodTrainer,
)

COMMON = dict(max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, use_cpu=True, logging_steps=1,
              save_strategy="no", disable_tqdm=True, report_to="none")
LORA = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _check_changed(model, before, lora: bool):
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    if lora:
        assert changed and all("lora_" in n for n in changed), "LoRA: only adapter weights may change"
        assert any("lora_" in n for n in changed)
    else:
        assert len(changed) >= len(before) // 2, "full-parameter: most weights should change"


def _train_and_check(trainer, lora, out_dir):
    before = _snapshot(trainer.model)
    trainer.train()
    _check_changed(trainer.model, before, lora)
    trainer.save_model(str(out_dir))
    files = {p.name for p in out_dir.iterdir()}
    assert ("adapter_model.safetensors" in files) if lora else ("model.safetensors" in files)
    card = (out_dir / "README.md").read_text()
    assert trainer.method_name in card and "Final metrics" in card and "learning_rate" in card


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("method", UNLEARN_METHODS)
def test_unlearn_methods_train(method, lora, tiny_facts_model_dir, synthetic_tofu, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    # the whole forget split (20 rows) in one batch, so step 2 sees the rows step 1 pushed down
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method=method, ref_cache_dir=str(tmp_path / "c"),
                         **{**COMMON, "per_device_train_batch_size": 20})
    trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                             retain_dataset=synthetic_tofu["retain90"], processing_class=tok,
                             peft_config=LORA if lora else None)
    _train_and_check(trainer, lora, tmp_path / "saved")
    logged = trainer.state.log_history[0]
    assert "forget_nll" in logged
    if method.startswith("npo"):
        assert logged["npo_weight_mean"] == pytest.approx(1.0, abs=1e-4)  # pi_theta = pi_ref at step 1
        assert trainer.state.log_history[1]["npo_weight_mean"] < 1.0


def test_reference_cache_and_lora_reference(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method="npo", ref_cache_dir=str(tmp_path / "c"), **COMMON)
    first = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                           processing_class=tok)
    second = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                            processing_class=tok)
    assert not first.ref_cache_hit and second.ref_cache_hit and first.ref_cache_file == second.ref_cache_file
    lora = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                          processing_class=tok, peft_config=LORA)
    assert lora.ref_cache_hit  # same base weights, same data: the adapter does not change the key
    ref = first.train_dataset["forget_ref_logps"]
    model = AutoModelForCausalLM.from_pretrained(tiny_facts_model_dir)
    ids, labels = encode_prompt_completion(tok, synthetic_tofu["forget10"][0]["question"],
                                           synthetic_tofu["forget10"][0]["answer"], 512)
    with torch.no_grad():
        direct = sequence_logps(model(torch.tensor([ids])).logits, torch.tensor([labels]))[0].item()
    assert ref[0] == pytest.approx(direct, abs=1e-4)
    # a change in the middle of the network (a merged fine-tune of one layer) is another reference, not a hit
    changed = AutoModelForCausalLM.from_pretrained(tiny_facts_model_dir)
    with torch.no_grad():
        changed.model.layers[0].mlp.up_proj.weight.add_(0.05)
    assert not UnlearnTrainer(changed, args, forget_dataset=synthetic_tofu["forget10"], processing_class=tok).ref_cache_hit
    # a PEFT model whose adapter was trained before: pi_ref is the model as given, adapter on (not its base)
    from peft import get_peft_model

    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_facts_model_dir), LORA)
    with torch.no_grad():
        for n, w in peft.named_parameters():
            if "lora_B" in n:
                w.normal_(0, 0.05)
        expect = sequence_logps(peft(torch.tensor([ids])).logits, torch.tensor([labels]))[0].item()
    trained = UnlearnTrainer(peft, args, forget_dataset=synthetic_tofu["forget10"], processing_class=tok)
    assert not trained.ref_cache_hit
    assert trained.train_dataset["forget_ref_logps"][0] == pytest.approx(expect, abs=1e-4)
    assert abs(expect - direct) > 1e-2
    # npo_kl's retain KL needs pi_ref online: from a trained adapter, a frozen merged copy (not the base)
    kl_args = UnlearnConfig(output_dir=str(tmp_path / "kl"), method="npo_kl", ref_cache_dir=str(tmp_path / "c"),
                            **COMMON)
    kl = UnlearnTrainer(peft, kl_args, forget_dataset=synthetic_tofu["forget10"],
                        retain_dataset=synthetic_tofu["retain90"], processing_class=tok)
    with torch.no_grad():
        ref_logits = kl.ref_model.to("cpu")(torch.tensor([ids])).logits
        assert torch.allclose(ref_logits, peft(torch.tensor([ids])).logits, atol=1e-4)


def _answer_prob(model, tok, rows):
    values = []
    with torch.no_grad():
        for r in rows:
            ids, labels = encode_prompt_completion(tok, r["question"], r["answer"])
            lp, n = sequence_logps(model(torch.tensor([ids])).logits, torch.tensor([labels]))
            values.append(math.exp(lp.item() / n.item()))
    return sum(values) / len(values)


def test_npo_rt_unlearns_forget_and_keeps_retain(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    """Synthetic TOFU: forget probability falls by > 30% while retain probability falls less than half as much.

    The synthetic authors share answer templates, so pushing forget answers down drags retain answers along;
    the retain term keeps that drag small. Measured (lr 5e-4, 10 steps, batch 4): forget 0.990 -> 0.61,
    retain 0.987 -> 0.87 (an earlier tokenizer corpus gave 0.986 -> 0.52 and 0.986 -> 0.96)."""
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_facts_model_dir)
    forget, retain = synthetic_tofu["forget10"], synthetic_tofu["retain90"]
    before = _answer_prob(model, tok, forget), _answer_prob(model, tok, retain)
    assert before[0] > 0.8 and before[1] > 0.8  # the fine-tuned model knows both
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method="npo_rt", ref_cache_dir=str(tmp_path / "c"),
                         **{**COMMON, "max_steps": 10, "learning_rate": 5e-4})
    UnlearnTrainer(model, args, forget_dataset=forget, retain_dataset=retain, processing_class=tok).train()
    after = _answer_prob(model, tok, forget), _answer_prob(model, tok, retain)
    assert after[0] < 0.7 * before[0]
    assert before[1] - after[1] < 0.5 * (before[0] - after[0])


def test_unlikelihood_trains_full_and_lora(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert 0 < sum(labeled_rollout["label"]) < len(labeled_rollout)  # positives and negatives
    for lora in (False, True):
        args = UnlikelihoodConfig(output_dir=str(tmp_path / f"o{lora}"), token_ul_alpha=1.0, seq_ul_rate=0.5,
                                  seq_ul_max_new_tokens=16, **{**COMMON, "max_steps": 4})
        trainer = UnlikelihoodTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout, processing_class=tok,
                                      peft_config=LORA if lora else None)
        _train_and_check(trainer, lora, tmp_path / f"saved{lora}")
        keys = set().union(*[h.keys() for h in trainer.state.log_history])
        assert {"negative_ul", "positive_nll"} & keys


def test_unlikelihood_pushes_negatives_down(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    neg = [r for r in labeled_rollout.to_list() if not r["label"]][:6]

    def neg_logp():
        with torch.no_grad():
            total = 0.0
            for r in neg:
                ids, labels = encode_prompt_completion(tok, r["prompt"], r["completion"])
                total += sequence_logps(model(torch.tensor([ids])).logits, torch.tensor([labels]))[0].item()
        return total

    before = neg_logp()
    args = UnlikelihoodConfig(output_dir=str(tmp_path / "o"), **{**COMMON, "max_steps": 5})
    UnlikelihoodTrainer(model, args, train_dataset=neg, processing_class=tok).train()
    assert neg_logp() < before - 1.0


def test_contrastive_trains_with_self_adversarial_negatives(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for lora in (False, True):
        args = ContrastiveRationaleConfig(output_dir=str(tmp_path / f"o{lora}"), snapshot_every=1, snapshot_lag=1,
                                          disc_warmup_steps=1, adversarial_max_new_tokens=24,
                                          **{**COMMON, "max_steps": 4, "per_device_train_batch_size": 8})
        trainer = ContrastiveRationaleTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout,
                                              processing_class=tok, peft_config=LORA if lora else None)
        _train_and_check(trainer, lora, tmp_path / f"saved{lora}")
        keys = set().union(*[h.keys() for h in trainer.state.log_history])
        assert {"adversarial_sampled", "negative_margin", "answer_nll", "discriminator_loss"} <= keys


def test_contrastive_discriminator_steps_once_per_optimizer_step(tiny_model_dir, labeled_rollout, tmp_path):
    """Gradient accumulation 2: every micro-batch adds its BCE gradient, and the discriminator takes one Adam step
    per optimizer step with the mean of the two (not one step per micro-batch)."""
    import copy

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = ContrastiveRationaleConfig(output_dir=str(tmp_path / "o"), self_adversarial=False, disc_warmup_steps=0,
                                      gradient_accumulation_steps=2, **{**COMMON, "max_steps": 3})
    trainer = ContrastiveRationaleTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout,
                                          processing_class=tok)
    initial = copy.deepcopy(trainer.discriminator)
    micro_batches, after_step_1 = [], {}
    accumulate = trainer._accumulate_discriminator

    def recording(ids, mask, target):
        micro_batches.append((trainer.state.global_step, ids.clone(), mask.clone(), target.clone()))
        return accumulate(ids, mask, target)

    class Snapshot(TrainerCallback):  # added after the trainer's own callback: sees the stepped discriminator
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                after_step_1.update(copy.deepcopy(trainer.discriminator.state_dict()))

    trainer._accumulate_discriminator = recording
    trainer.add_callback(Snapshot())
    trainer.train()
    assert trainer.state.global_step == 3
    assert [m[0] for m in micro_batches] == [0, 0, 1, 1, 2, 2]
    assert {int(s["step"]) for s in trainer.disc_opt.state.values()} == {3}  # Adam steps: one per optimizer step
    # step 1 by hand: Adam on the mean BCE of the step's two micro-batches
    opt = torch.optim.Adam(initial.parameters(), lr=args.disc_lr)
    losses = [torch.nn.functional.binary_cross_entropy_with_logits(initial(ids, mask), target)
              for step, ids, mask, target in micro_batches if step == 0]
    (sum(losses) / len(losses)).backward()
    opt.step()
    for name, value in initial.state_dict().items():
        torch.testing.assert_close(after_step_1[name], value)


def test_bad_input(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method="npo_rt", ref_cache_dir=str(tmp_path / "c"), **COMMON)
    with pytest.raises(DataError, match="forget dataset is empty"):
        UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=[], processing_class=tok)
    with pytest.raises(DataError, match="method 'npo_rt' needs a retain set: pass --retain"):
        UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"], processing_class=tok)
    with pytest.raises(DataError, match="forget dataset, row 0: expected columns question/answer"):
        UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=[{"q": 1}], processing_class=tok)
    with pytest.raises(ValueError, match="--method 'npo2'"):
        UnlearnConfig(output_dir=str(tmp_path), method="npo2")
    with pytest.raises(DataError, match="row 1, column 'label': expected bool"):
        UnlikelihoodTrainer(str(tiny_facts_model_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "u"), **COMMON),
                            train_dataset=[{"prompt": "a", "completion": "b", "label": True},
                                           {"prompt": "a", "completion": "b", "label": "no"}], processing_class=tok)


def test_nan_loss_stops_with_step_batch_and_checkpoint(tiny_facts_model_dir, synthetic_tofu, tmp_path):
    class PoisonAfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            args.forget_weight = float("nan")

    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path / "o"), method="ga", **{**COMMON, "max_steps": 3,
                                                                         "save_strategy": "steps", "save_steps": 1})
    trainer = UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                             processing_class=tok, callbacks=[PoisonAfterFirstStep()])
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 2 \(batch rows \[.*\]\).*checkpoint-1"):
        trainer.train()
    assert (tmp_path / "o" / "checkpoint-1" / "model.safetensors").exists()


def test_trl_conversational_rows_train_as_their_text(tiny_model_dir, labeled_rollout, tmp_path):
    """TRL's conversational prompt-completion rows (KTO's unpaired format: the completion one assistant message)
    train exactly as the same rows with text completions; the tokens are the chat template's own rendering of the
    whole conversation (up to the newline after the end-of-turn token); several messages are refused."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = labeled_rollout.to_list()[:8]
    chat = [{**r, "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]
    ids, _ = encode_prompt_completion(tok, chat[0]["prompt"], rows[0]["completion"])
    whole = tok.apply_chat_template(chat[0]["prompt"] + chat[0]["completion"], tokenize=False)
    assert tok.decode(ids) + "\n" == whole
    trained = []
    for data in (rows, chat):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        args = UnlikelihoodConfig(output_dir=str(tmp_path / f"o{len(trained)}"), seed=3, **COMMON)
        UnlikelihoodTrainer(model, args, train_dataset=data, processing_class=tok).train()
        trained.append(_snapshot(model))
    assert all(torch.equal(trained[0][n], trained[1][n]) for n in trained[0])
    assert chat[0]["completion"][0]["content"] == rows[0]["completion"]  # the caller's rows are not rewritten
    two = [{**chat[0], "completion": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}]
    with pytest.raises(DataError, match=r"row 0, column 'completion': .*one assistant message.*'assistant', 'user'"):
        UnlikelihoodTrainer(str(tiny_model_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "x"), **COMMON),
                            train_dataset=two, processing_class=tok)
