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


def render_chat(tokenizer, messages: list[dict[str, Any]]) -> list[int]:
    """Prompt token ids exactly as TRL's trainers build them: the chat template with the generation prompt,
    rendered to text, then tokenized without adding special tokens a second time."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
