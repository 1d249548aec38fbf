"""Issue 13 items 7 and 10 against hand-computed values: sequence-level unlikelihood as in the reference
``ngram_repeat_mask`` / ``ul_seq`` (facebookresearch/unlikelihood_training), and QCRD's min over the positive
set, max over the negative set and discriminator-weighted self-adversarial negatives."""

import math
from types import SimpleNamespace

import pytest
import torch

from negtune.losses import repeat_ngram_mask
from negtune.losses.contrastive import argmin_per_group, contrastive_rationale_loss
from negtune.losses.unlikelihood import sequence_unlikelihood_loss
from negtune.trainers import contrastive_trainer as ct
from negtune.trainers.contrastive_config import ContrastiveRationaleConfig
from negtune.trainers.unlikelihood_config import UnlikelihoodConfig
from negtune.trainers.unlikelihood_trainer import UnlikelihoodTrainer, continuation_mask

# --- sequence-level unlikelihood ----------------------------------------------------------------------------


def test_repeat_ngram_mask_marks_every_token_of_a_repeated_ngram():
    ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 5], [7, 7, 7, 7, 7, 8, 9, 9, 9]])
    m = repeat_ngram_mask(ids, n=4)
    # 1 2 3 4 repeats at positions 4..7: all four tokens are candidates (the old mask had only position 7)
    assert m[0].nonzero().flatten().tolist() == [4, 5, 6, 7]
    # 7 7 7 7 starting at 1 overlaps its first occurrence (0..3): still a repeat, as in the reference code
    assert m[1].nonzero().flatten().tolist() == [1, 2, 3, 4]
    # the sequence's last n-gram is checked (the reference loop, range(len(x) - n), skips it)
    assert repeat_ngram_mask(torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4]]), n=4)[0].tolist() == [False] * 4 + [True] * 4
    # an n-gram touching an invalid (padding) token is neither a repeat nor remembered
    valid = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 1]]).bool()
    assert not repeat_ngram_mask(torch.tensor([[5, 6, 5, 6, 5, 6, 5, 6]]), n=4, mask=valid)[0, 6:].any()
    assert repeat_ngram_mask(torch.tensor([[5, 6, 5, 6, 5, 6]]), n=2).tolist() == [[False, False, True, True, True,
                                                                                     True]]


def test_sequence_unlikelihood_is_normalised_by_all_continuation_tokens():
    # p(token) = 3/4 everywhere the token is 1, so -log(1 - p) = log 4 at each candidate
    V, T = 2, 6
    logits = torch.zeros(1, T, V)
    logits[..., 1] = math.log(3.0)
    tokens = torch.tensor([[1, 1, 1, 1, 1, 0]])
    cand = torch.tensor([[0, 0, 1, 1, 0, 0]]).bool()
    valid = torch.tensor([[1, 1, 1, 1, 1, 0]]).bool()  # 5 continuation tokens, 2 of them repeated
    loss = sequence_unlikelihood_loss(logits, tokens, cand, valid)
    assert loss.item() == pytest.approx(2 * math.log(4) / 5, rel=1e-6)  # the old step: log 4 (mean over 2)
    # no repeat: zero, with a graph
    z = torch.zeros(1, T, V, requires_grad=True)
    zero = sequence_unlikelihood_loss(z, tokens, torch.zeros_like(cand), valid)
    zero.backward()
    assert zero.item() == 0 and z.grad is not None


def test_continuation_mask_keeps_the_first_stop_token():
    cont = torch.tensor([[5, 6, 2, 0, 0], [5, 2, 2, 2, 2], [5, 6, 7, 8, 9]])
    # pad == eos == 2 in row 2: comparing with the pad id would drop the real EOS
    assert continuation_mask(cont, {2}).long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


class _FixedContinuation(torch.nn.Module):
    """Greedy 'generation' that returns fixed continuations, and uniform logits p = 1/V (a parameter, so the
    loss has a graph); records the prompts it was given."""

    def __init__(self, continuations, vocab=10):
        super().__init__()
        self.continuations = torch.tensor(continuations)
        self.bias = torch.nn.Parameter(torch.zeros(vocab))
        self.seen = None

    def generate(self, input_ids, attention_mask, pad_token_id, **kwargs):
        self.seen = (input_ids.clone(), attention_mask.clone(), kwargs)
        return torch.cat([input_ids, self.continuations], dim=1)

    def forward(self, input_ids, attention_mask, position_ids):
        self.positions = position_ids
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))


def test_sequence_ul_step_prefix_candidates_and_normaliser(tmp_path):
    eos = pad = 2
    conts = [[5, 6, 7, 8, 5, 6, 7, 8, eos, pad], [3] * 10]
    model = _FixedContinuation(conts)
    args = UnlikelihoodConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert (args.seq_ul_prefix_length, args.seq_ul_max_new_tokens, args.seq_ul_ngram) == (50, 100, 4)
    recorded = {}
    fake = SimpleNamespace(args=args, processing_class=SimpleNamespace(pad_token_id=pad, eos_token_id=eos),
                           accelerator=SimpleNamespace(unwrap_model=lambda m: m),
                           record=lambda **kw: recorded.update(kw))
    prompt_a, prompt_b = list(range(100, 160)), list(range(200, 230))  # 60 and 30 prompt tokens
    rows = [prompt_a + [9, 9], prompt_b + [9] * 32]
    inputs = {"input_ids": torch.tensor([r + [pad] * (62 - len(r)) for r in rows]),
              "prompt_len": torch.tensor([60, 30])}
    loss = UnlikelihoodTrainer._sequence_ul_step(fake, model, inputs)
    ids, mask, kwargs = model.seen
    assert ids[0].tolist() == prompt_a[-50:] and ids[1, 20:].tolist() == prompt_b and mask[1].sum() == 30
    assert kwargs["max_new_tokens"] == 100 and kwargs["do_sample"] is False
    # row 0: 5678 repeats at 4..7 (4 candidates), 9 valid tokens (the EOS counts); row 1: 3333 repeats from
    # position 1 on (9 candidates), 10 valid tokens. -log(1 - 1/10) = log(10/9) at each candidate.
    assert loss.item() == pytest.approx((4 + 9) * math.log(10 / 9) / (9 + 10), rel=1e-5)
    assert recorded["seq_ul_repeat_fraction"].item() == pytest.approx(13 / 19)
    assert model.positions[1, 20:].tolist() == list(range(40))  # counted from the first real token
    loss.backward()
    assert model.bias.grad is not None


# --- contrastive rationale (QCRD) ---------------------------------------------------------------------------


def test_qcrd_min_over_positive_set_and_max_over_negative_set():
    pos = torch.tensor([1.0, 3.0, 2.0, 0.5], requires_grad=True)
    neg = torch.tensor([1.0, 2.5, 4.0, 0.5])  # hinges max(0, 3 - NLL): 2, 0.5, 0, 2.5
    pos_w = torch.tensor([1.0, 3.0, 2.0, 4.0])
    groups = dict(pos_groups=torch.tensor([0, 0, 1, 1]), neg_groups=torch.tensor([0, 0, 1, 2]))
    assert argmin_per_group(pos.detach(), groups["pos_groups"]).tolist() == [0, 3]
    loss, parts = contrastive_rationale_loss(pos, neg, pos_weights=pos_w, delta=3.0, positive_set="min",
                                             negative_set="max", **groups)
    # question 0's closest positive (NLL 1, weight 1), question 1's (NLL 0.5, weight 4): (1 + 2) / 5
    assert parts["positive"].item() == pytest.approx(0.6)
    # the largest hinge of each question's negatives: 2 (q0), 0 (q1), 2.5 (q2)
    assert parts["negative"].item() == pytest.approx(1.5)
    assert loss.item() == pytest.approx(0.5 * 0.6 + 0.5 * 1.5)
    loss.backward()  # only the picked positives get a gradient, each a2 * w / sum(w)
    assert pos.grad.tolist() == pytest.approx([0.5 * 1 / 5, 0.0, 0.0, 0.5 * 4 / 5])
    # the default ("mean") keeps negtune's every-rationale terms: (1 + 9 + 4 + 2) / 10 and (2 + .5 + 0 + 2.5) / 4
    _, mean_parts = contrastive_rationale_loss(pos, neg, pos_weights=pos_w, delta=3.0, **groups)
    assert (mean_parts["positive"].item(), mean_parts["negative"].item()) == pytest.approx((1.6, 1.25))
    # without groups the batch is one question
    _, one = contrastive_rationale_loss(pos, neg, positive_set="min", negative_set="max")
    assert (one["positive"].item(), one["negative"].item()) == pytest.approx((0.5, 2.5))
    with pytest.raises(ValueError, match="positive_set"):
        contrastive_rationale_loss(pos, neg, positive_set="max")


class _StubDiscriminator(torch.nn.Module):
    """Fixed quality logits per row position, chosen by the batch size (4 rows: the training batch, all
    rationales, also seen by the discriminator's own update; 2 rows: the self-adversarial batch)."""

    def __init__(self, logits: dict[int, list[float]]):
        super().__init__()
        self.logits = {n: torch.tensor(v) for n, v in logits.items()}
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask):
        return self.logits[input_ids.shape[0]] + 0 * self.w


@pytest.fixture(scope="module")
def untrained_tiny():
    """An untrained tiny Qwen2 and its tokenizer (the losses below replace the model's NLLs anyway)."""
    from negtune.models.tiny import build_model, task_corpus, train_tokenizer

    tok = train_tokenizer(task_corpus()[:400], vocab_size=300)
    return build_model(tok), tok


def _contrastive_trainer(untrained_tiny, tmp_path, **kw):
    model, tok = untrained_tiny
    rows = [{"prompt": f"{a}+{a}=", "completion": c, "label": c == str(2 * a), "answer": str(2 * a)}
            for a in (1, 2) for c in (str(2 * a), "7", "9")]
    args = ContrastiveRationaleConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", self_adversarial=False,
                                      disc_warmup_steps=0, adversarial_per_batch=2, alpha_answer=0.0, **kw)
    return ct.ContrastiveRationaleTrainer(model, args, train_dataset=rows, processing_class=tok)


def _batch(kinds, groups):
    n = len(kinds)
    return {"input_ids": torch.ones(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 3, dtype=torch.long),
            "labels": torch.ones(n, 3, dtype=torch.long), "kind": torch.tensor(kinds), "group": torch.tensor(groups),
            "index": torch.arange(n)}


def test_self_adversarial_negatives_are_weighted_by_the_discriminator(untrained_tiny, tmp_path, monkeypatch):
    trainer = _contrastive_trainer(untrained_tiny, tmp_path)
    P, N = ct.POSITIVE, ct.NEGATIVE
    inputs = _batch([P, N, N, P], [0, 0, 1, 1])
    # NLL per row: training batch (4 rows), self-adversarial batch (2 rows)
    monkeypatch.setattr(ct, "_per_row_nll", lambda model, b: {4: torch.tensor([1.0, 1.0, 2.0, 0.4]),
                                                                2: torch.tensor([0.5, 2.5])}[b["input_ids"].shape[0]])
    # quality s: training rows 0.8, 0.5, 0.75, 0.5; self-adversarial 0.75 and 0.25 (logits +-log 3)
    trainer.discriminator = _StubDiscriminator({4: [math.log(4), 0.0, math.log(3), 0.0],
                                                2: [math.log(3), -math.log(3)]})
    trainer._adversarial.extend([([5, 6, 7], [-100, 6, 7], 0), ([5, 6, 8], [-100, 6, 8], 1)])
    loss = trainer.compute_loss(trainer.model, inputs)
    # negatives: NLL 1, 2 (weights 1 - s = .5, .25) and self-adversarial NLL .5, 2.5 (weights .25, .75);
    # hinges 2, 1, 2.5, .5 -> (1 + .25 + .625 + .375) / 1.75. Old code: weight 1 for both self-adversarial ones.
    negative = (0.5 * 2 + 0.25 * 1 + 0.25 * 2.5 + 0.75 * 0.5) / 1.75
    positive = (0.8 * 1.0 + 0.5 * 0.4) / 1.3
    assert loss.item() == pytest.approx(0.5 * positive + 0.5 * negative, rel=1e-5)


def test_min_positive_set_in_the_trainer_and_grouped_batches(untrained_tiny, tmp_path, monkeypatch):
    trainer = _contrastive_trainer(untrained_tiny, tmp_path, use_discriminator=False, positive_set="min",
                                   negative_set="max")
    P, N = ct.POSITIVE, ct.NEGATIVE
    monkeypatch.setattr(ct, "_per_row_nll", lambda model, b: torch.tensor([1.5, 0.5, 2.0, 1.0, 2.5, 3.5]))
    loss = trainer.compute_loss(trainer.model, _batch([P, P, N, N, P, N], [0, 0, 0, 0, 1, 1]))
    # positives: min per question 0.5 (q0), 2.5 (q1); negatives: largest hinge 3 - 1 = 2 (q0), 0 (q1)
    assert loss.item() == pytest.approx(0.5 * (0.5 + 2.5) / 2 + 0.5 * (2 + 0) / 2)
    # the per-question terms batch each question's rows together, in a seeded order that changes per epoch
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, ct.QuestionGroupedSampler)
    groups = trainer.train_dataset["group"]
    order = list(sampler)
    assert sorted(order) == list(range(len(groups)))
    runs = [g for i, g in enumerate(groups[j] for j in order) if i == 0 or g != groups[order[i - 1]]]
    assert len(runs) == len(set(groups))  # each question's rows are contiguous
    assert list(sampler) == order  # the same epoch gives the same order (exact resume)
    many = ct.QuestionGroupedSampler(list(range(20)), seed=0)
    first = list(many)
    many.set_epoch(1)
    assert list(many) != first
    default = _contrastive_trainer(untrained_tiny, tmp_path / "d")._get_train_sampler()
    assert not isinstance(default, ct.QuestionGroupedSampler)
