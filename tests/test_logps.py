"""Memory-lean log-probs: the selective log-softmax and answer-only logits equal the plain computation."""

import pytest
import torch
from torch.autograd import gradcheck
from transformers import Qwen2Config, Qwen2ForCausalLM

import negtune.losses.logps as logps_module
from negtune.losses.logps import sequence_logps, target_logits, token_logps


def _reference_token_logps(logits, labels):
    mask = labels != -100
    out = torch.log_softmax(logits.double(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return out * mask


@pytest.mark.parametrize("chunk", [1 << 23, 14])  # one chunk per row, and two rows of 7 per chunk
def test_selective_log_softmax_values_and_gradient(monkeypatch, chunk):
    monkeypatch.setattr(logps_module, "_CHUNK_ELEMENTS", chunk)
    torch.manual_seed(0)
    labels = torch.tensor([[1, 2, -100, 3, 6], [0, -100, -100, 5, 4]])
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(token_logps(x, labels)[0], _reference_token_logps(x, labels), atol=1e-12)
    assert gradcheck(lambda z: token_logps(z, labels)[0], (x,))
    # a non-contiguous view (what shift_for_causal_lm hands over) works the same
    wide = torch.randn(2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda z: token_logps(z[:, :-1], labels)[0], (wide,))


def test_selective_log_softmax_low_precision_keeps_dtype_and_accumulates_in_float32():
    torch.manual_seed(0)
    x = (torch.randn(3, 4, 50) * 4).to(torch.bfloat16).requires_grad_(True)
    labels = torch.randint(0, 50, (3, 4))
    out, _ = token_logps(x, labels)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), _reference_token_logps(x.detach().double(), labels), atol=1e-5)
    out.sum().backward()
    assert x.grad.dtype == torch.bfloat16
    expected = torch.func.grad(lambda z: _reference_token_logps(z, labels).sum())(x.detach().double())
    assert torch.allclose(x.grad.double(), expected, atol=1e-2)


def _tiny_lm(vocab=40):
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return Qwen2ForCausalLM(cfg).double()


def _batch():
    ids = torch.randint(3, 40, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    labels = ids.clone()
    labels[0, :4] = -100  # prompts of different lengths: the first target of the batch is at column 3
    labels[1, :3] = -100
    labels[1, 7:] = -100
    labels[2, :5] = -100
    return ids, mask, labels


class _NoLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward has no logits_to_keep (older or custom models): the fallback slices."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("wrap", ["plain", "no_logits_to_keep", "peft"])
def test_target_logits_equal_full_logits_in_value_and_gradient(wrap):
    lm = _tiny_lm()
    model = lm
    if wrap == "no_logits_to_keep":
        model = _NoLogitsToKeep(lm)
    elif wrap == "peft":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(lm, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        for n, p in model.named_parameters():
            if "lora_B" in n:  # non-zero adapter, so the check sees the adapter's effect too
                torch.nn.init.normal_(p, std=0.1)
    ids, mask, labels = _batch()
    params = [p for p in model.parameters() if p.requires_grad]

    full_lp, full_n = sequence_logps(model(input_ids=ids, attention_mask=mask).logits, labels)
    full_grads = torch.autograd.grad(full_lp.sum(), params)

    logits, cols = target_logits(model, ids, mask, labels)
    assert cols == slice(3, 9) and logits.shape[1] == 6  # prompt-only columns 0..1 never reached the head
    lp, m = token_logps(logits, labels[:, cols])
    grads = torch.autograd.grad(lp.sum(-1).sum(), params)
    assert torch.allclose(lp.sum(-1), full_lp, atol=1e-10) and torch.equal(m.sum(-1), full_n)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, full_grads))


def test_target_logits_without_any_target_returns_an_empty_sum():
    model = _tiny_lm()
    ids, mask, _ = _batch()
    labels = torch.full_like(ids, -100)
    logits, cols = target_logits(model, ids, mask, labels)
    lp, m = token_logps(logits, labels[:, cols])
    assert m.sum() == 0 and torch.all(lp == 0)
