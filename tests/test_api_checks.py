"""The Python API refuses what it cannot do right, before any work: config values outside a formula's domain,
arguments a TRL user may pass that negtune's trainers set themselves, rewards a method's formula does not hold
for, data that is not rows; and a tokenizer without a pad token pads with EOS as the command line does."""

from types import SimpleNamespace

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.data.rows import training_rows
from negtune.trainers import (
    ContrastiveRationaleConfig,
    NFTConfig,
    NFTTrainer,
    NGRPOConfig,
    NGRPOTrainer,
    OfflineNFTConfig,
    UnlearnConfig,
    UnlikelihoodConfig,
    UnlikelihoodTrainer,
)

OUT = dict(output_dir="/tmp/negtune-api-checks", use_cpu=True, report_to="none")


@pytest.mark.parametrize("make, match", [
    (lambda: NFTConfig(beta=0.5, **OUT), "NFT's objective has no KL term"),
    (lambda: NFTConfig(neg_weight=-1.0, **OUT), "--neg_weight must be >= 0"),
    (lambda: OfflineNFTConfig(nft_eps=0.0, **OUT), "--nft_eps must be > 0"),
    (lambda: OfflineNFTConfig(prompt_weight="bogus", **OUT), "--prompt_weight must be one of 1-r, grpo"),
    (lambda: OfflineNFTConfig(pass_rate_min=0.9, pass_rate_max=0.1, **OUT), "pass_rate_min <= --pass_rate_max"),
    (lambda: OfflineNFTConfig(pass_rate_min=0.0, drop_homogeneous=False, **OUT), "divides by r-hat"),
    (lambda: OfflineNFTConfig(method="rft", neg_weight=0.5, **OUT), "RFT is NFT with neg_weight 0"),
    (lambda: NGRPOConfig(epsilon=-0.1, **OUT), "clip range"),
    (lambda: NGRPOConfig(r_max=-1.0, **OUT), "--r_max"),
    (lambda: UnlikelihoodConfig(alpha=-1.0, **OUT), "--alpha and --token_ul_alpha must be >= 0"),
    (lambda: ContrastiveRationaleConfig(alpha_neg=-1.0, **OUT), "--alpha_neg must be >= 0"),
    (lambda: ContrastiveRationaleConfig(delta=-3.0, **OUT), "--delta > 0"),
    (lambda: ContrastiveRationaleConfig(neg_decay=5.0, **OUT), "--neg_decay <= 1"),
    (lambda: UnlearnConfig(method="npo", forget_weight=-1.0, **OUT), "--forget_weight and --retain_weight"),
])
def test_config_values_outside_the_formula_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_valid_edges_are_accepted():
    assert OfflineNFTConfig(method="rft", **OUT).neg_weight == 0.0  # the default 1.0 is RFT's 0
    assert OfflineNFTConfig(pass_rate_min=0.0, pass_rate_max=1.0, **OUT).drop_homogeneous  # mixed groups only


def test_max_length_must_be_positive(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="--max_length must be at least 1"):
        encode_prompt_completion(tok, "2+2?", "4", max_length=-3)


def _labeled():
    return [{"prompt": "1+1?", "completion": "2", "label": True}, {"prompt": "1+1?", "completion": "3", "label": False}]


def test_trainer_arguments_checked_before_any_work(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = UnlikelihoodConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=1)
    with pytest.raises(ValueError, match="`tokenizer=` is its old name, pass processing_class="):
        UnlikelihoodTrainer(str(tiny_model_dir), args, _labeled(), tokenizer=tok)
    with pytest.raises(ValueError, match="builds its own data_collator"):
        UnlikelihoodTrainer(str(tiny_model_dir), args, _labeled(), processing_class=tok, data_collator=lambda x: x)
    keep = UnlikelihoodConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=True)
    with pytest.raises(ValueError, match="leave remove_unused_columns False"):
        UnlikelihoodTrainer(str(tiny_model_dir), keep, _labeled(), processing_class=tok)
    with pytest.raises(ValueError, match="computes no evaluation loss"):
        UnlikelihoodTrainer(str(tiny_model_dir), args, _labeled(), processing_class=tok, eval_dataset=_labeled())
    evaluating = UnlikelihoodConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", eval_strategy="steps")
    with pytest.raises(ValueError, match="negtune eval math|tofu"):
        UnlikelihoodTrainer(str(tiny_model_dir), evaluating, _labeled(), processing_class=tok)
    # a tokenizer without a pad token (Llama's ship so) pads with EOS and trains
    tok.pad_token = None
    assert tok.pad_token_id is None
    trainer = UnlikelihoodTrainer(str(tiny_model_dir), args, _labeled(), processing_class=tok)
    assert tok.pad_token == tok.eos_token
    trainer.train()
    assert torch.isfinite(torch.tensor(trainer.state.log_history[-1]["train_loss"]))


def test_rows_that_are_not_rows_or_contradict_their_label():
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(_labeled())})
    with pytest.raises(DataError, match=r"a dict of splits \('train'\), not rows; pass one split, e.g. "
                                        r"dataset\['train'\]"):
        training_rows(splits, "labeled")
    bad_rate = [{**r, "group_pass_rate": 1.7} for r in _labeled()]
    with pytest.raises(DataError, match=r"row 0, column 'group_pass_rate': expected a number in \[0, 1\]"):
        training_rows(bad_rate, "labeled", extra_columns=("group_pass_rate",))
    missing = [{**r, "group_pass_rate": None} for r in _labeled()]
    with pytest.raises(DataError, match="row 0, column 'group_pass_rate'.*got None"):
        training_rows(missing, "labeled", extra_columns=("group_pass_rate",))
    contradiction = [{**_labeled()[0], "group_pass_rate": 0.0}]
    with pytest.raises(DataError, match="0.0 contradicts the row's label True"):
        training_rows(contradiction, "labeled", extra_columns=("group_pass_rate",))


def test_rewards_outside_the_methods_formula_are_refused():
    """Online NFT labels samples right (1) or wrong (0); NGRPO's virtual sample must be each group's maximum."""
    NFTTrainer._check_rewards(None, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="NFT: got a reward of 0.4"):
        NFTTrainer._check_rewards(None, torch.tensor([0.0, 0.4]))
    ngrpo = SimpleNamespace(args=SimpleNamespace(r_max=1.0))
    NGRPOTrainer._check_rewards(ngrpo, torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="a reward of 5 exceeds --r_max 1"):
        NGRPOTrainer._check_rewards(ngrpo, torch.tensor([0.0, 5.0]))


def test_evaluate_tofu_with_a_model_needs_its_tokenizer(tmp_path):
    from negtune.evaluation.tofu import TofuEvalConfig, evaluate_tofu

    with pytest.raises(ValueError, match=r"pass its tokenizer too \(tokenizer=...\)"):
        evaluate_tofu(TofuEvalConfig(model="unused", out=str(tmp_path / "e")), model=object())


def test_a_retain_set_for_a_method_without_one_is_named(tiny_facts_model_dir, synthetic_tofu, tmp_path, caplog):
    from negtune.trainers import UnlearnTrainer

    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    args = UnlearnConfig(output_dir=str(tmp_path), method="ga", use_cpu=True, report_to="none", max_steps=1)
    with caplog.at_level("WARNING"):
        UnlearnTrainer(str(tiny_facts_model_dir), args, forget_dataset=synthetic_tofu["forget10"],
                       retain_dataset=synthetic_tofu["retain90"], processing_class=tok)
    assert "method 'ga' uses no retain set: retain_dataset is not read" in caplog.text
