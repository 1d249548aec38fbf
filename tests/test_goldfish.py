"""Goldfish loss (``goldfish_k``): the drop rule by hand, its invariants, and the trainers that take it."""

import pytest
import torch
from transformers import AutoTokenizer

from negtune.losses.goldfish import TABLE_SEED, TABLE_SIZE, _table, apply_goldfish, goldfish_drop_mask
from negtune.trainers import (
    ContrastiveRationaleConfig,
    ContrastiveRationaleTrainer,
    UnlikelihoodConfig,
    UnlikelihoodTrainer,
)


def test_hash_rule_by_hand():
    # h = 2: token i (i >= 2) is dropped when table[(x_{i-1} * x_i) mod 1,000,003] < 1/k
    ids = torch.tensor([5, 7, 11, 2, 3, 9, 400, 123])
    table = torch.rand(TABLE_SIZE, generator=torch.Generator().manual_seed(TABLE_SEED))
    assert torch.equal(table, _table())  # the authors' table (CPU draw): same drops on every machine and run
    expect = [False, False] + [bool(table[(ids[i - 1] * ids[i]).item() % TABLE_SIZE] < 0.5) for i in range(2, 8)]
    assert goldfish_drop_mask(ids, k=2, h=2).tolist() == expect
    assert any(expect) and not all(expect[2:])  # the case tells drops from keeps


def test_static_rule_and_rates():
    assert goldfish_drop_mask(torch.arange(12), k=4, strategy="static").nonzero().flatten().tolist() == [1, 5, 9]
    ids = torch.randint(1, 5000, (4, 4000), generator=torch.Generator().manual_seed(0))
    for k in (2, 4, 8):
        drop = goldfish_drop_mask(ids, k=k, h=13)
        assert drop.shape == ids.shape and not drop[:, :13].any()  # fewer than h tokens before: kept
        assert drop[:, 13:].float().mean().item() == pytest.approx(1 / k, abs=0.02)


def test_a_passage_drops_the_same_tokens_wherever_it_appears():
    passage = torch.randint(1, 5000, (60,), generator=torch.Generator().manual_seed(1))
    a = goldfish_drop_mask(torch.cat([torch.tensor([17, 18, 19]), passage]), k=4, h=5)[3:]
    b = goldfish_drop_mask(torch.cat([torch.tensor([900] * 11), passage]), k=4, h=5)[11:]
    assert torch.equal(a[4:], b[4:])  # past its first h-1 tokens, the windows lie inside the passage
    assert a.any()


def test_apply_goldfish_drops_answer_labels_only_and_validates():
    ids = list(range(100, 160))
    labels = [-100] * 20 + ids[20:]
    out = apply_goldfish(ids, labels, k=2, h=3)
    assert out[:20] == [-100] * 20
    dropped = [i for i in range(20, 60) if out[i] == -100]
    assert dropped and len(dropped) < 40 and all(out[i] == labels[i] for i in range(20, 60) if i not in dropped)
    with pytest.raises(ValueError, match="k must be >= 2"):
        goldfish_drop_mask(torch.arange(5), k=1)
    with pytest.raises(ValueError, match="strategy"):
        goldfish_drop_mask(torch.arange(5), k=4, strategy="random")
    for bad, match in (({"goldfish_k": 1}, "--goldfish_k must be 0"), ({"goldfish_strategy": "x"}, "strategy"),
                       ({"goldfish_h": 0}, "--goldfish_h")):
        with pytest.raises(ValueError, match=match):
            UnlikelihoodConfig(output_dir="x", use_cpu=True, **bad)


def _loss_tokens(trainer, positive: bool) -> int:
    return sum(sum(t != -100 for t in r["labels"]) for r in trainer.train_dataset if r["is_positive"] == positive)


def test_unlikelihood_takes_goldfish_on_positives_and_trains(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = dict(max_steps=2, per_device_train_batch_size=8, learning_rate=1e-3, use_cpu=True, save_strategy="no",
                  report_to="none", disable_tqdm=True, logging_steps=1)
    plain = UnlikelihoodTrainer(str(tiny_model_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "a"), **common),
                                train_dataset=labeled_rollout, processing_class=tok)
    fish = UnlikelihoodTrainer(str(tiny_model_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "b"), goldfish_k=2,
                                                                       goldfish_h=3, **common),
                               train_dataset=labeled_rollout, processing_class=tok)
    assert _loss_tokens(fish, True) < 0.75 * _loss_tokens(plain, True)  # about half the positive tokens dropped
    assert _loss_tokens(fish, False) == _loss_tokens(plain, False)  # negatives keep every token
    assert [r["prompt_len"] for r in fish.train_dataset] == [r["prompt_len"] for r in plain.train_dataset]
    before = {n: p.detach().clone() for n, p in fish.model.named_parameters()}
    fish.train()
    assert any(not torch.equal(before[n], p) for n, p in fish.model.named_parameters())


def test_contrastive_takes_goldfish_on_its_likelihood_terms(tiny_model_dir, labeled_rollout, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = dict(max_steps=1, per_device_train_batch_size=8, use_cpu=True, save_strategy="no", report_to="none")
    plain = ContrastiveRationaleTrainer(str(tiny_model_dir), ContrastiveRationaleConfig(output_dir=str(tmp_path / "a"),
                                                                                        **cfg),
                                        train_dataset=labeled_rollout, processing_class=tok)
    fish = ContrastiveRationaleTrainer(str(tiny_model_dir), ContrastiveRationaleConfig(output_dir=str(tmp_path / "b"),
                                                                                       goldfish_k=2, goldfish_h=2,
                                                                                       **cfg),
                                       train_dataset=labeled_rollout, processing_class=tok)

    def tokens(trainer, negative: bool) -> int:
        return sum(sum(t != -100 for t in r["labels"]) for r in trainer.train_dataset if (r["kind"] == 1) == negative)

    assert tokens(fish, False) < tokens(plain, False) and tokens(fish, True) == tokens(plain, True)


def test_the_goldfish_recipe_runs_from_the_command_line(tiny_model_dir, labeled_rollout, tmp_path):
    from pathlib import Path

    from negtune.cli import main

    data = tmp_path / "labeled.parquet"
    labeled_rollout.to_parquet(str(data))
    recipe = Path(__file__).resolve().parents[1] / "recipes/unlikelihood/tiny-goldfish.yaml"
    out = tmp_path / "out"
    assert main(["train", "unlikelihood", "--config", str(recipe), "--model_name_or_path", str(tiny_model_dir),
                 "--dataset", str(data), "--output_dir", str(out), "--max_steps", "2", "--disable_tqdm", "true"]) == 0
    card = (out / "README.md").read_text()
    assert '"goldfish_k": 4' in card and (out / "adapter_model.safetensors").exists()


def test_a_row_keeps_its_labels_when_the_rule_would_drop_them_all():
    from types import SimpleNamespace

    from negtune.trainers.goldfish import goldfish_labels

    args = SimpleNamespace(goldfish_k=2, goldfish_h=13, goldfish_strategy="static")
    ids = [10, 11, 12, 13, 14, 15]
    one_answer_token = [-100] * 5 + [15]  # static k=2 drops positions 1, 3, 5: the only answer token
    assert apply_goldfish(ids, one_answer_token, 2, strategy="static") == [-100] * 6
    assert goldfish_labels(args, ids, one_answer_token) == one_answer_token
    two = [-100] * 4 + [14, 15]
    assert goldfish_labels(args, ids, two) == [-100] * 4 + [14, -100]
