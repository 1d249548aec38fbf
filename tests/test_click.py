"""Click: the margin loss and the likelihood-ranked pairs by hand, the trainer's batches, loss and training."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from negtune.data.io import DataError
from negtune.losses.click import click_loss, likelihood_ranked_pairs
from negtune.trainers.click_config import ClickConfig
from negtune.trainers.click_trainer import ClickTrainer

COMMON = dict(per_device_train_batch_size=4, use_cpu=True, save_strategy="no", report_to="none", disable_tqdm=True,
              logging_steps=1)


def test_margin_loss_by_hand():
    pos = torch.tensor([-10.0, -30.0, -5.0], requires_grad=True)
    neg = torch.tensor([-40.0, -20.0, -4.0], requires_grad=True)
    loss = click_loss(pos, neg, margin=15.0)
    # hinges: max(0, 15 - 30) = 0, max(0, 15 + 10) = 25, max(0, 15 + 1) = 16 -> mean 41 / 3
    assert loss.item() == pytest.approx(41 / 3)
    loss.backward()
    assert pos.grad.tolist() == pytest.approx([0, -1 / 3, -1 / 3]) and neg.grad.tolist() == pytest.approx([0, 1 / 3, 1 / 3])
    empty = click_loss(torch.zeros(0), torch.zeros(0))
    assert empty.item() == 0.0


def test_pairs_rank_by_likelihood():
    likelihood = [-5.0, -2.0, -9.0, -1.0, -3.0, -7.0]
    labels = [True, True, False, False, False, False]
    # best positive: row 1 (-2.0); negatives most likely first: 3 (-1), 4 (-3), 5 (-7), 2 (-9)
    assert likelihood_ranked_pairs(likelihood, labels, max_pairs=3) == [(1, 3), (1, 4), (1, 5)]
    assert likelihood_ranked_pairs(likelihood, labels, max_pairs=10) == [(1, 3), (1, 4), (1, 5), (1, 2)]
    assert likelihood_ranked_pairs(likelihood, [True] * 6) == [] == likelihood_ranked_pairs(likelihood, [False] * 6)
    for bad in ({"max_pairs": 0}, {"pairing": "best"}, {"margin": -1.0}, {"method": "ul"}):
        with pytest.raises(ValueError):
            ClickConfig(output_dir="x", use_cpu=True, **bad)


def test_trainer_pairs_batches_and_loss(tiny_model_dir, labeled_rollout, tmp_path):
    from negtune.data.prompts import encode_prompt_completion
    from negtune.trainers.reference import compute_reference_logps

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = ClickConfig(output_dir=str(tmp_path / "o"), max_steps=1, margin=5.0, max_pairs=2, **COMMON)
    trainer = ClickTrainer(str(tiny_model_dir), args, train_dataset=labeled_rollout, processing_class=tok)
    rows = labeled_rollout.to_list()
    positives = [r for r in rows if r["label"]]
    labels_of = {}
    for r in rows:
        labels_of.setdefault(str(r["prompt"]), set()).add(r["label"])
    paired_prompts = sum(len(v) == 2 for v in labels_of.values())
    # every positive is an LM target; each item carries one prompt's pairs (LM rows cycled if fewer)
    assert len(trainer.train_dataset) == max(len(positives), paired_prompts)
    assert sum(bool(x["pair_pos"]) for x in trainer.train_dataset) == paired_prompts
    # the pairs of one prompt, by hand: its most likely positive against its 2 most likely negatives
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = next(r["prompt"] for r in rows if r["label"] and any(not x["label"] and x["prompt"] == r["prompt"]
                                                                  for x in rows))
    group = [r for r in rows if r["prompt"] == prompt]
    enc = [encode_prompt_completion(tok, r["prompt"], r["completion"]) for r in group]
    lik = compute_reference_logps(base, enc, tok.pad_token_id)
    expect = likelihood_ranked_pairs(lik, [r["label"] for r in group], 2)
    first = list(enc[expect[0][0]][0])
    item = next(x for x in trainer.train_dataset if x["pair_pos"] and list(x["pair_pos"][0][0]) == first)
    assert [list(p[0]) for p in item["pair_pos"]][: len(expect)] == [list(enc[p][0]) for p, _ in expect]
    assert [list(n[0]) for n in item["pair_neg"]][: len(expect)] == [list(enc[n][0]) for _, n in expect]
    item = {**item, "pair_pos": item["pair_pos"][: len(expect)], "pair_neg": item["pair_neg"][: len(expect)]}
    n_pairs = sum(len(x["pair_pos"]) for x in trainer.train_dataset)
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(str(r["prompt"]), []).append(r["label"])
    assert n_pairs == sum(min(2, ls.count(False)) for ls in by_prompt.values() if True in ls and False in ls)
    # the trainer's loss on that item = NLL of its positive + 0.3 * mean hinge of its pairs, by hand
    batch = trainer.data_collator([item])
    assert (batch["n_lm"], batch["n_pairs"]) == (1, len(expect))
    with torch.no_grad():
        got = trainer.compute_loss(trainer.model, batch)
        seqs = [(list(item["input_ids"]), list(item["labels"]))] + [enc[p] for p, _ in expect] + \
            [enc[n] for _, n in expect]
        per_token = compute_reference_logps(base, [seqs[0]], tok.pad_token_id, per_token=True)[0]
        nll = -sum(per_token) / sum(1 for y in seqs[0][1][1:] if y != -100)
        sums = compute_reference_logps(base, seqs[1:], tok.pad_token_id)
        k = len(expect)
        hinge = sum(max(0.0, 5.0 - sums[i] + sums[k + i]) for i in range(k)) / k
    assert got.item() == pytest.approx(nll + 0.3 * hinge, rel=1e-4)


def test_click_trains_full_and_lora_and_refuses_unpaired_data(tiny_model_dir, labeled_rollout, tmp_path):
    from peft import LoraConfig

    from negtune.data.prompts import encode_prompt_completion

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = ClickTrainer(str(tiny_model_dir), ClickConfig(output_dir=str(tmp_path / "f"), max_steps=2, learning_rate=1e-3,
                                                         **COMMON), train_dataset=labeled_rollout, processing_class=tok)
    before = {n: p.detach().clone() for n, p in full.model.named_parameters()}
    full.train()
    assert any(not torch.equal(before[n], p) for n, p in full.model.named_parameters())
    assert {"lm_nll", "click_hinge"} <= {k for h in full.state.log_history for k in h}
    lora = ClickTrainer(str(tiny_model_dir), ClickConfig(output_dir=str(tmp_path / "l"), max_steps=2, learning_rate=1e-2,
                                                         pairing="random", **COMMON), train_dataset=labeled_rollout,
                        processing_class=tok, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    before = {n: p.detach().clone() for n, p in lora.model.named_parameters()}
    lora.train()
    changed = {n for n, p in lora.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all("lora_" in n for n in changed)
    gold = [{"prompt": r["prompt"], "completion": "The answer is \\boxed{1}."} for r in labeled_rollout.to_list()[:5]]
    with_gold = ClickTrainer(str(tiny_model_dir), ClickConfig(output_dir=str(tmp_path / "g"), max_steps=1, **COMMON),
                             train_dataset=labeled_rollout, processing_class=tok, lm_dataset=gold)
    assert "5 lm_dataset rows" in with_gold._data_description
    assert {tuple(x["input_ids"]) for x in with_gold.train_dataset} == {
        tuple(encode_prompt_completion(tok, g["prompt"], g["completion"])[0]) for g in gold}
    with pytest.raises(DataError, match="no prompt .* has both a positive and a negative"):
        ClickTrainer(str(tiny_model_dir), ClickConfig(output_dir=str(tmp_path / "n"), **COMMON),
                     train_dataset=labeled_rollout.filter(lambda r: r["label"]), processing_class=tok)


def test_click_lm_dataset_from_the_command_line(tiny_model_dir, labeled_rollout, tmp_path, capsys):
    from pathlib import Path

    from negtune.cli import main
    from negtune.data.io import write_jsonl

    labeled_rollout.to_parquet(str(tmp_path / "ro.parquet"))
    gold = [{"question": r["prompt"][-1]["content"], "answer": "The answer is \\boxed{1}."}
            for r in labeled_rollout.to_list()[:6]]
    write_jsonl(tmp_path / "gold.jsonl", gold)
    recipe = str(Path(__file__).resolve().parents[1] / "recipes/click/tiny.yaml")
    common = ["--config", recipe, "--model_name_or_path", str(tiny_model_dir), "--dataset", str(tmp_path / "ro.parquet"),
              "--max_steps", "1", "--disable_tqdm", "true", "--lm_dataset", str(tmp_path / "gold.jsonl")]
    assert main(["train", "click", *common, "--output_dir", str(tmp_path / "c")]) == 0
    assert "6 lm_dataset rows" in (tmp_path / "c" / "README.md").read_text()
    capsys.readouterr()
    nat = str(Path(__file__).resolve().parents[1] / "recipes/nat/tiny.yaml")
    assert main(["train", "nat", *common[2:], "--config", nat, "--output_dir", str(tmp_path / "n")]) == 2
    assert "--lm_dataset is click's" in capsys.readouterr().err
