"""Test-only reward: splits any group about in half whatever the model's skill, so every RL method under
test gets groups with both labels (the machinery, not the model, is what those tests check)."""


def length_parity(completion: str, answer: str) -> float:
    return float(len(completion) % 2 == 0)
