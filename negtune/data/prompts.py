"""Prompt templates shared by rollout, training and evaluation, so all of them see the same text."""

from __future__ import annotations

from typing import Any

# Qwen2.5-Math chain-of-thought instruction (also lighteval / open-r1's default for math).
MATH_COT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
TEMPLATES = {
    "qwen-math-cot": "{problem}\n" + MATH_COT_INSTRUCTION,
    "plain": "{problem}",
}


def format_prompt(problem: str | list[dict[str, Any]], template: str = "qwen-math-cot") -> list[dict[str, Any]]:
    """A chat message list for ``problem``. Chat-list prompts (verl files) are kept as they are."""
    if isinstance(problem, list):
        return problem
    fmt = TEMPLATES.get(template, template)
    if "{problem}" not in fmt:
        raise ValueError(f"prompt template {template!r} is neither a known name ({', '.join(TEMPLATES)}) "
                         "nor a format string containing '{problem}'")
    return [{"role": "user", "content": fmt.replace("{problem}", problem)}]


def render_chat(tokenizer, messages: list[dict[str, Any]] | str) -> list[int]:
    """Prompt token ids exactly as TRL's trainers build them: the chat template with the generation prompt,
    rendered to text, then tokenized without adding special tokens a second time. A plain-text prompt, or
    a tokenizer without a chat template (base models), is tokenized as is (with the tokenizer's BOS)."""
    if isinstance(messages, str) or not getattr(tokenizer, "chat_template", None):
        text = messages if isinstance(messages, str) else "\n".join(m["content"] for m in messages) + "\n"
        return tokenizer(text)["input_ids"]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def as_chat(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chat list for a prompt given as text (a TOFU question) or already as a chat list."""
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def encode_prompt_completion(tokenizer, prompt, completion: str, max_length: int | None = None,
                             add_eos: bool = True) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one prompt + completion; prompt tokens carry -100 in labels.

    The completion ends with EOS (the model learns to stop); sequences longer than ``max_length`` lose
    their tail, so the prompt is always kept whole.
    """
    prompt_ids = render_chat(tokenizer, as_chat(prompt))
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    ids = prompt_ids + completion_ids
    labels = [-100] * len(prompt_ids) + completion_ids
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels
