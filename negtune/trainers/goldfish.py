"""The Goldfish option of negtune's likelihood-on-positives losses (``goldfish_k``): see
:mod:`negtune.losses.goldfish`. Taken by ``unlikelihood`` (its NLL on positive completions: with no negatives
this is plain SFT) and ``contrastive`` (its positive-rationale and gold-answer NLL); negatives keep every token
(pushing a token down is not memorising it). With ``token_ul_alpha`` a dropped token also leaves the
repetition candidates of the tokens after it (it is not a loss token)."""

from __future__ import annotations

from dataclasses import dataclass, field

from negtune.losses.goldfish import apply_goldfish


@dataclass
class GoldfishFields:
    goldfish_k: int = field(default=0, metadata={"help": (
        "Goldfish loss (Hans et al. 2024): leave 1 in k answer tokens of every positive example out of the loss, "
        "chosen by a hash of the h tokens ending at it, so training passages are not reproduced verbatim "
        "(0 = off; 4 in the paper's main setting)")})
    goldfish_h: int = field(default=13, metadata={"help": "Goldfish context width h: tokens hashed per decision "
                                                          "(13, the authors' released models; their code's default 4)"})
    goldfish_strategy: str = field(default="hash", metadata={
        "help": "'hash' (the authors' hash table: a repeated passage drops the same tokens) or 'static' (every "
                "k-th token)", "choices": ["hash", "static"]})

    def __post_init__(self):
        super().__post_init__()
        if self.goldfish_k == 1 or self.goldfish_k < 0:
            raise ValueError(f"--goldfish_k must be 0 (off) or >= 2, got {self.goldfish_k}")
        if self.goldfish_strategy not in ("hash", "static"):
            raise ValueError(f"--goldfish_strategy must be 'hash' or 'static', got {self.goldfish_strategy!r}")
        if self.goldfish_h < 1:
            raise ValueError(f"--goldfish_h must be >= 1, got {self.goldfish_h}")


def goldfish_labels(args, input_ids: list[int], labels: list[int]) -> list[int]:
    """``labels`` as the loss sees them: unchanged unless ``args.goldfish_k`` is set, and unchanged when the rule
    would drop every answer token of a (short) row: a row with no loss token would count as NLL 0 in the
    per-row means of ``contrastive`` (and be the one its ``positive_set="min"`` picks)."""
    if not args.goldfish_k:
        return labels
    dropped = apply_goldfish(input_ids, labels, args.goldfish_k, args.goldfish_h, args.goldfish_strategy)
    return dropped if any(x != -100 for x in dropped) else labels
