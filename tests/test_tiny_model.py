import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.models.tiny import (
    WarmStartConfig,
    arith_accuracy,
    build_model,
    create_tiny_model,
    encode_sft,
    greedy_completions,
    task_corpus,
    train_tokenizer,
    warm_start,
)


def test_saved_folder_is_a_normal_hf_model(tiny_model_dir):
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert "model.safetensors" in files and "pytorch_model.bin" not in files
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "negtune_tiny.json"} <= files
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    info = json.loads((tiny_model_dir / "negtune_tiny.json").read_text())
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert 0.0 <= info["greedy_accuracy"] <= 1.0


def test_tokenizer_round_trips_any_utf8(tiny_model_dir, shared_data):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    gsm_prompt = json.loads((shared_data / "math/gsm8k/test.jsonl").read_text().splitlines()[0])["question"]
    for text in [gsm_prompt, "Ünïcödé ∑ 漢字 🙂 \\frac{1}{2}", "tabs\tand\nnewlines"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert len(tok("12345", add_special_tokens=False)["input_ids"]) == 5  # one token per digit


def test_chat_template_is_chatml(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_sft_encoding_masks_prompt():
    tok = train_tokenizer(task_corpus()[:500], vocab_size=400)
    ids, labels = encode_sft(tok, "What is 1+1?", r"\boxed{2}")
    n_prompt = sum(1 for x in labels if x == -100)
    assert n_prompt > 0 and labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tok.eos_token_id


def test_generation_runs_and_accuracy_is_measured(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    outs = greedy_completions(model, tok, ["Ava has 3 coins. How many coins does Ava have now?"] * 2,
                              max_new_tokens=8)
    assert len(outs) == 2 and outs[0] == outs[1]
    assert tok.padding_side == "right" or tok.padding_side == "left"


def test_warm_start_lowers_loss_deterministically(tmp_path):
    tok = train_tokenizer(task_corpus()[:2000], vocab_size=512)
    model = build_model(tok, seed=1)
    cfg = WarmStartConfig(time_budget_s=1e9, eval_every=40, n_eval=4, target_accuracy=0.0, n_train=500,
                          batch_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc = warm_start(model, tok, cfg)
    assert cfg.history and cfg.history[0]["step"] == 40 and 0.0 <= acc <= 1.0
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    first_loss = cfg.history[0]["loss"]
    model2 = build_model(tok, seed=1)
    cfg2 = WarmStartConfig(time_budget_s=1e9, eval_every=40, n_eval=4, target_accuracy=0.0, n_train=500,
                           batch_size=8)
    warm_start(model2, tok, cfg2)
    assert cfg2.history[0]["loss"] == pytest.approx(first_loss, rel=1e-4)


@pytest.mark.slow
def test_default_warm_start_reaches_partial_accuracy(tmp_path):
    """The embedded default reaches 20-60% greedy accuracy within its step budget (800 steps, which take
    about 3 minutes on 2 free cores; wall time is not asserted: the time cap is lifted here so that a
    loaded machine gives the same model)."""
    info = create_tiny_model(tmp_path / "tiny", task="arith", seed=0, warm=WarmStartConfig(time_budget_s=1e9))
    assert info["history"][-1]["step"] <= 800
    assert 0.2 <= info["greedy_accuracy"] <= 0.6
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    from negtune.data.tasks.arith import make_arith

    fresh = arith_accuracy(model, tok, make_arith(64, seed=777, difficulty=2))
    assert 0.1 <= fresh <= 0.75  # generalises to unseen problems, still leaves room to learn
