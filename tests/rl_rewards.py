"""Test-only reward: splits any group about in half whatever the model's skill, so every RL method under
test gets groups with both labels (the machinery, not the model, is what those tests check)."""


def length_parity(completion: str, answer: str) -> float:
    return float(len(completion) % 2 == 0)


def odd_answers_split(completion: str, answer: str) -> float:
    """Prompts with an even gold answer: every sample wrong (a homogeneous group, no NFT signal); odd: split
    by length parity. Dynamic sampling must fill the batch with odd-answer groups."""
    if int(answer) % 2 == 0:
        return 0.0
    return length_parity(completion, answer)
