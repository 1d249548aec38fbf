"""Negative-aware training (NAT): the marker functions and loss by hand, the trainer's data and loss, the marker
saved with the model and applied by rollout and evaluation."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import DataError
from negtune.data.prompts import (
    MARKER_FILE,
    add_marker,
    encode_prompt_completion,
    resolve_marker,
    saved_marker,
    strip_marker,
)
from negtune.losses.nat import nat_loss
from negtune.trainers import NATConfig, NATTrainer
from negtune.trainers.nat_trainer import marked_prompt, select_negatives

POS, NEG = "Solve the problem correctly.", "Solve the problem incorrectly."
COMMON = dict(per_device_train_batch_size=8, use_cpu=True, save_strategy="no", report_to="none",
              disable_tqdm=True, logging_steps=1)


def test_marker_goes_at_the_end_of_the_last_user_message():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"},
            {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2?\n"}]
    out = add_marker(chat, POS)
    assert out[3]["content"] == "2+2?\n" + POS and out[1]["content"] == "1+1?"  # no space after a newline
    assert chat[3]["content"] == "2+2?\n"  # a copy
    assert add_marker([{"role": "user", "content": "3+3?"}], NEG)[0]["content"] == "3+3? " + NEG
    assert add_marker(chat, "") is chat and add_marker(chat, None) is chat
    with pytest.raises(ValueError, match="no user message"):
        add_marker([{"role": "system", "content": "x"}], POS)
    # a marked prompt loses its marker (either one) before it gets the row's own
    assert strip_marker(add_marker(chat, NEG), (POS, NEG)) == chat  # exactly what add_marker added comes off
    one = [{"role": "user", "content": "3+3?"}]
    assert strip_marker(add_marker(one, "incorrectly."), ("correctly.", "incorrectly.")) == one  # longest first
    assert marked_prompt(add_marker(chat, POS)[1:], False, (POS, NEG))[-1]["content"] == "2+2?\n" + NEG
    assert marked_prompt("What is 5?", True, (POS, NEG)) == [{"role": "user", "content": "What is 5? " + POS}]
    assert strip_marker(chat, (POS, NEG)) is chat


def test_nat_loss_by_hand():
    logps = torch.tensor([[-1.0, -2.0, -7.0], [-0.5, -9.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    loss = nat_loss(logps, mask)
    assert loss.item() == pytest.approx((1 + 2 + 0.5) / 3)  # token mean over the batch, not row means (1.75)
    loss.backward()
    assert torch.allclose(logps.grad, -mask.float() / 3)
    assert nat_loss(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool)).item() == 0.0


def test_negatives_are_subsampled_per_positive():
    rows = [{"label": i % 5 == 0, "i": i} for i in range(20)]  # 4 positives, 16 negatives
    two = select_negatives(rows, 2.0, seed=0)
    assert sum(r["label"] for r in two) == 4 and sum(not r["label"] for r in two) == 8
    assert [r["i"] for r in two] == sorted(r["i"] for r in two)  # data order kept
    assert two == select_negatives(rows, 2.0, seed=0) and two != select_negatives(rows, 2.0, seed=1)
    assert select_negatives(rows, -1, seed=0) == rows and select_negatives(rows, 5.0, seed=0) == rows
    assert all(r["label"] for r in select_negatives(rows, 0, seed=0))
    with pytest.raises(DataError, match="no positive completion"):
        select_negatives([{"label": False}], 2.0, seed=0)
    for bad, match in (({"negatives_per_positive": -2}, "negatives_per_positive"),
                       ({"negative_marker": POS}, "make them differ"), ({"method": "sft"}, "nat")):
        with pytest.raises(ValueError, match=match):
            NATConfig(output_dir="x", use_cpu=True, positive_marker=POS, **bad)


def test_trainer_conditions_each_row_on_its_marker_and_its_loss_is_the_marked_nll(tiny_model_dir, labeled_rollout,
                                                                                   tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = NATConfig(output_dir=str(tmp_path / "o"), max_steps=1, negatives_per_positive=-1, **COMMON)
    trainer = NATTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout, processing_class=tok)
    rows = labeled_rollout.to_list()
    assert len(trainer.train_dataset) == len(rows)
    for row, item in zip(rows, trainer.train_dataset):
        marker = POS if row["label"] else NEG
        assert item["is_positive"] == bool(row["label"])
        expect = encode_prompt_completion(tok, add_marker(row["prompt"], marker), row["completion"])
        assert (item["input_ids"], item["labels"]) == (list(expect[0]), list(expect[1]))
        assert marker in tok.decode(item["input_ids"])
    # the trainer's loss on a batch = the token-mean NLL of the completions given the marked prompts, by hand
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        got = trainer.compute_loss(trainer.model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                ignore_index=-100)
    assert got.item() == pytest.approx(nll.item(), rel=1e-5)


def test_nat_trains_full_and_lora_and_saves_its_marker(tiny_model_dir, labeled_rollout, tmp_path):
    from peft import LoraConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = NATTrainer(str(tiny_model_dir), NATConfig(output_dir=str(tmp_path / "full"), max_steps=2, learning_rate=1e-3,
                                                     **COMMON), train_dataset=labeled_rollout, processing_class=tok)
    before = {n: p.detach().clone() for n, p in full.model.named_parameters()}
    full.train()
    assert all(not torch.equal(before[n], p) for n, p in full.model.named_parameters() if "embed" not in n)
    logged = {k for h in full.state.log_history for k in h}
    assert {"positive_nll", "negative_nll"} <= logged
    full.save_model()
    assert saved_marker(str(tmp_path / "full")) == POS
    lora = NATTrainer(str(tiny_model_dir), NATConfig(output_dir=str(tmp_path / "lora"), max_steps=2, learning_rate=1e-2,
                                                     **COMMON), train_dataset=labeled_rollout, processing_class=tok,
                      peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in lora.model.named_parameters()}
    lora.train()
    changed = {n for n, p in lora.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)
    lora.save_model()
    assert json.loads((tmp_path / "lora" / MARKER_FILE).read_text())["marker"] == POS
    assert (tmp_path / "lora" / "adapter_model.safetensors").exists()


def test_rollout_and_eval_sample_with_the_saved_marker(tiny_model_dir, tmp_path):
    import shutil

    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith
    from negtune.evaluation.math import MathEvalConfig, evaluate_math
    from negtune.rollout.stage import RolloutConfig, RolloutSettingsError, rollout_and_verify
    from negtune.trainers.nat_trainer import save_marker

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    save_marker(str(model), POS)
    assert resolve_marker("auto", str(model)) == POS and resolve_marker("none", str(model)) is None
    assert resolve_marker("Be right.", str(model)) == "Be right." and resolve_marker("auto", str(tiny_model_dir)) is None
    write_jsonl(tmp_path / "p.jsonl", make_arith(3, seed=5, difficulty=1))
    common = dict(model=str(model), dataset=str(tmp_path / "p.jsonl"), n=2, engine="hf", max_new_tokens=8,
                  verify_workers=0)
    ds, _ = rollout_and_verify(RolloutConfig(out=str(tmp_path / "r"), **common), progress=False)
    assert all(r["prompt"][-1]["content"].endswith(" " + POS) for r in ds.to_list())
    assert json.loads((tmp_path / "r" / "settings.json").read_text())["marker"] == POS
    with pytest.raises(RolloutSettingsError, match="marker"):  # a resume cannot mix marked and unmarked samples
        rollout_and_verify(RolloutConfig(out=str(tmp_path / "r"), marker="none", **common), progress=False)
    ds, _ = rollout_and_verify(RolloutConfig(out=str(tmp_path / "plain"), marker="none", **common), progress=False)
    assert not any(POS in r["prompt"][-1]["content"] for r in ds.to_list())
    res = evaluate_math(MathEvalConfig(model=str(model), out=str(tmp_path / "e"), benchmarks=[str(tmp_path / "p.jsonl")],
                                       n=1, temperature=0, max_new_tokens=8, verify_workers=0), progress=False)
    assert res["settings"]["marker_text"] == POS
    sample = json.loads((tmp_path / "e" / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"][-1]["content"].endswith(POS)
    (model / MARKER_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a negtune prompt-marker file"):
        saved_marker(str(model))
