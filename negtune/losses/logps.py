"""Log-probabilities of target tokens, shared by every loss (prompt/padding positions masked).

Two things keep the (batch, length, vocabulary) logits — the largest activation of a fine-tuning step when
the vocabulary is 32k-152k — small:

- :func:`target_logits` asks the model for logits only at the columns that predict a target token (TRL's
  ``logits_to_keep``), so prompt columns never reach the output layer;
- :func:`token_logps` computes ``log p(label)`` without a float32 log-softmax copy of the logits and, in the
  backward pass, writes the gradient chunk by chunk into one tensor (autograd's
  ``gather - logsumexp`` would hold several logits-sized temporaries at once).
"""

from __future__ import annotations

import inspect

import torch

# rows of logits processed at once in float32 (about 32 MB at a 128k vocabulary)
_CHUNK_ELEMENTS = 1 << 23


def shift_for_causal_lm(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align next-token logits with labels: logits[:, :-1] predict labels[:, 1:]."""
    return logits[:, :-1, :], labels[:, 1:]


def _row_chunks(logits: torch.Tensor):
    """(batch index, column slice) pairs covering ``logits`` (B, T, V) in pieces of about _CHUNK_ELEMENTS."""
    B, T, V = logits.shape
    step = max(1, _CHUNK_ELEMENTS // max(V, 1))
    for b in range(B):
        for t in range(0, T, step):
            yield b, slice(t, min(t + step, T))


class _SelectiveLogSoftmax(torch.autograd.Function):
    """log_softmax(logits)[index] over the last dimension; saves the logits and the (B, T) logsumexp only."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        acc = torch.promote_types(logits.dtype, torch.float32)  # float32, or float64 for float64 logits
        lse = torch.empty(index.shape, dtype=acc, device=logits.device)
        for b, cols in _row_chunks(logits):
            lse[b, cols] = torch.logsumexp(logits[b, cols].to(acc), dim=-1)
        picked = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1).to(acc)
        ctx.save_for_backward(logits, index, lse)
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, index, lse = ctx.saved_tensors
        grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        grad_out = grad_out.to(lse.dtype)
        for b, cols in _row_chunks(logits):
            g = grad_out[b, cols].unsqueeze(-1)
            # d/dz_v [z_y - lse(z)] = 1[v = y] - softmax(z)_v
            part = (logits[b, cols].to(lse.dtype) - lse[b, cols].unsqueeze(-1)).exp_().mul_(-g)
            part.scatter_add_(-1, index[b, cols].unsqueeze(-1), g)
            grad[b, cols] = part
        return grad, None


def token_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p(label) (B, T) and the mask of real targets, for *already aligned* logits (B, T, V) and
    labels (B, T): ``log p(y_t) = z_{y_t} - logsumexp_v z_v``, 0 where masked. Float32 whatever the logits'
    dtype (float64 for float64 logits); the gradient reaching the logits has their dtype."""
    mask = labels != ignore_index
    safe = labels.masked_fill(~mask, 0)
    logps = _SelectiveLogSoftmax.apply(logits, safe)
    return logps * mask, mask


def mean_token_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-sum(mask * logps) / sum(mask): the causal-LM loss as Hugging Face computes it, a mean over every answer
    token of the batch (0 when there is none)."""
    mask = mask.to(logps.dtype)
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(y|x) = sum_t log pi(y_t | x, y_<t) over completion tokens (B,), and the token counts (B,).

    ``logits``/``labels`` as a causal LM returns/takes them (unshifted); prompt tokens carry -100.
    """
    shifted_logits, shifted_labels = shift_for_causal_lm(logits, labels)
    logps, mask = token_logps(shifted_logits, shifted_labels, ignore_index)
    return logps.sum(-1), mask.sum(-1)


def _accepts_logits_to_keep(model) -> bool:
    """Whether the causal LM under any wrappers (DDP/DeepSpeed ``.module``, PEFT, torch.compile) takes
    ``logits_to_keep``."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif isinstance(getattr(inner, "module", None), torch.nn.Module):
            inner = inner.module
        elif isinstance(getattr(inner, "_orig_mod", None), torch.nn.Module):  # torch.compile
            inner = inner._orig_mod
        else:
            break
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


def target_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                  ignore_index: int = -100) -> tuple[torch.Tensor, slice]:
    """Run a causal LM for the logits that predict target tokens only.

    Returns ``(logits, cols)``: ``logits[:, i]`` predicts ``labels[:, cols][:, i]`` (already aligned, so
    ``token_logps(logits, labels[:, cols])``). The columns kept run from the first target of the batch to the
    end; columns before it carry no target in any row, so every loss over targets is unchanged, and the output
    layer and softmax skip the prompt (two thirds of a TOFU example under a Llama-3 chat template). Models
    whose ``forward`` has no ``logits_to_keep`` run in full and are sliced.
    """
    T = input_ids.shape[1]
    has_target = (labels[:, 1:] != ignore_index).any(0)
    first = int(has_target.nonzero()[0]) if bool(has_target.any()) else T - 2
    cols = slice(first + 1, T)
    if _accepts_logits_to_keep(model):
        keep = torch.arange(first, T - 1, device=input_ids.device)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, first:-1]
    return logits, cols
