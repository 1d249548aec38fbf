"""Prompt templates shared by rollout, training and evaluation, so all of them see the same text."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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


# "Today" for chat templates that print the date (Llama-3.x: "Today Date: ..."): open-unlearning's date_string for its
# Llama-3.x models (configs/model/Llama-3.2-1B-Instruct.yaml), so TOFU prompts match its models and never depend on
# the day a run happens.
PINNED_DATE = "10 Apr 2025"
_STRFTIME_CALL = re.compile(r"strftime_now\(\s*(?:'([^']*)'|\"([^\"]*)\")\s*\)")


def parse_date(date: str) -> datetime:
    """A pinned date given as chat templates print it (``"10 Apr 2025"``); ValueError otherwise."""
    try:
        return datetime.strptime(date, "%d %b %Y")
    except ValueError:
        raise ValueError(f"date {date!r}: expected a date like {PINNED_DATE!r} (day, month abbreviation, year)") from None


def _pinned_clock(template: str, date: str) -> tuple[str, dict[str, Any]]:
    """The template and the variables that make it render ``date`` as today.

    ``date_string`` is what Llama-3.x templates read when it is given (open-unlearning passes it the same way).
    Templates that call ``strftime_now(FORMAT)`` get a macro of that name, defined ahead of the template, which
    returns ``date`` in each format the template uses: transformers only passes plain data to templates, so the
    clock function itself cannot be replaced from outside.
    """
    day = parse_date(date)
    variables: dict[str, Any] = {"date_string": date}
    if "strftime_now" in template:
        formats = {a or b for a, b in _STRFTIME_CALL.findall(template)}
        if template.count("strftime_now(") != len(_STRFTIME_CALL.findall(template)):
            raise ValueError("the chat template calls strftime_now with a format that is not a string literal; "
                             "negtune cannot pin its date (pass a template of your own)")
        variables["negtune_pinned_dates"] = {f: day.strftime(f) for f in formats}
        template = "{%- macro strftime_now(fmt) -%}{{ negtune_pinned_dates[fmt] }}{%- endmacro -%}" + template
    return template, variables


def render_prompt_text(tokenizer, messages: list[dict[str, Any]] | str,
                       date: str = PINNED_DATE) -> tuple[str, bool]:
    """``(prompt text, add_special_tokens)``: the chat template with the generation prompt and the date pinned to
    ``date``, rendered to text (it holds its own special tokens); a plain-text prompt, or a tokenizer without a
    chat template (base models), as is, to be tokenized with the tokenizer's BOS."""
    if isinstance(messages, str) or not getattr(tokenizer, "chat_template", None):
        return (messages if isinstance(messages, str) else "\n".join(m["content"] for m in messages) + "\n"), True
    template, variables = _pinned_clock(tokenizer.get_chat_template(), date)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template,
                                         **variables)
    return text, False


def render_chat(tokenizer, messages: list[dict[str, Any]] | str, date: str = PINNED_DATE) -> list[int]:
    """Prompt token ids exactly as TRL's trainers build them: the chat template with the generation prompt,
    rendered to text (today's date pinned, see :data:`PINNED_DATE`), then tokenized without adding special
    tokens a second time. A plain-text prompt, or a tokenizer without a chat template (base models), is
    tokenized as is (with the tokenizer's BOS)."""
    text, special = render_prompt_text(tokenizer, messages, date)
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def as_chat(prompt: str | list[dict[str, Any]], system_prompt: str | None = None) -> list[dict[str, Any]]:
    """A chat list for a prompt given as text (a TOFU question) or already as a chat list; ``system_prompt``
    goes first unless the list has a system message of its own."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if system_prompt and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def encode_text_completion(tokenizer, prompt_text: str, completion: str, max_length: int | None = None,
                           add_eos: bool = True, add_special_tokens: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of an already rendered prompt + completion, by the reference convention (TOFU's
    ``data_module.convert_raw_data_to_model_format``, open-unlearning's ``preprocess_chat_instance``):
    ``prompt_text + completion`` is tokenized *as one string*, and the first ``len(tokenize(prompt_text))``
    labels are -100.

    Where the tokenizer merges the prompt's last characters with the completion's first (``"Answer: "`` +
    ``"The"`` -> ``... "Answer", ":", " The"``), the boundary still falls at the prompt's own token count, as in
    the references: a merged token at the boundary is masked, and the label boundary can sit one token into the
    answer. Tokenizing the two apart and concatenating (negtune before) scores other tokens there.
    The completion ends with EOS (the model learns to stop); sequences longer than ``max_length`` lose their
    tail (the EOS first), so the prompt is kept whole unless it alone is longer.
    """
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=add_special_tokens)["input_ids"])
    ids = tokenizer(prompt_text + completion, add_special_tokens=add_special_tokens)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    labels = ([-100] * n_prompt + ids[n_prompt:])[: len(ids)]
    if max_length is not None:
        if max_length < 1:  # a slice with it would cut tokens off the end instead
            raise ValueError(f"--max_length must be at least 1 (tokens of prompt + completion), got {max_length}")
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels


def encode_prompt_completion(tokenizer, prompt, completion: str, max_length: int | None = None,
                             add_eos: bool = True, *, system_prompt: str | None = None,
                             date: str = PINNED_DATE) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one prompt + completion; prompt tokens carry -100 in labels.

    The prompt (text or chat list, with ``system_prompt`` first if given) is rendered by
    :func:`render_prompt_text`, then :func:`encode_text_completion` tokenizes prompt and completion together and
    masks the prompt's token count (the references' convention; see there for the boundary). Every trainer, the
    reference log-prob cache and the TOFU eval encode through here, so all of them score the same tokens.
    """
    text, special = render_prompt_text(tokenizer, as_chat(prompt, system_prompt), date)
    return encode_text_completion(tokenizer, text, completion, max_length, add_eos, special)


# A quality marker saved with a model trained on marked prompts (negative-aware training): rollout and evaluation
# append it to every prompt of that model unless told otherwise (``--marker``).
MARKER_FILE = "negtune_prompt.json"


def add_marker(messages: list[dict[str, Any]], marker: str | None) -> list[dict[str, Any]]:
    """A copy of the chat list with ``marker`` appended to its last user message (after a space), as NAT puts
    its quality marker at the end of the task instruction; ``messages`` unchanged when ``marker`` is empty."""
    if not marker:
        return messages
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    if last is None or not isinstance(messages[last].get("content"), str):
        raise ValueError("a quality marker goes at the end of the last user message: this prompt has no user "
                         "message with text content")
    content = messages[last]["content"]
    sep = "" if not content or content[-1].isspace() else " "
    return [*messages[:last], {**messages[last], "content": content + sep + marker}, *messages[last + 1:]]


def strip_marker(messages: list[dict[str, Any]], markers: tuple[str, ...]) -> list[dict[str, Any]]:
    """The chat list without a trailing one of ``markers`` on its last user message (a rollout of a marked model
    stores its prompts as sampled, marker included)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") != "user" or not isinstance(messages[i].get("content"), str):
            continue
        content = messages[i]["content"]
        for m in sorted((m for m in markers if m and content.endswith(m)), key=len, reverse=True):
            rest = content[: -len(m)]  # without the separator add_marker put there (a space, unless whitespace)
            if rest.endswith(" ") and not rest[:-1][-1:].isspace():
                rest = rest[:-1]
            return [*messages[:i], {**messages[i], "content": rest}, *messages[i + 1:]]
        return messages
    return messages


def saved_marker(*folders: str | None) -> str | None:
    """The marker saved with a model (:data:`MARKER_FILE` in the adapter folder, else the model folder); None
    when there is none."""
    for folder in folders:
        path = Path(folder) / MARKER_FILE if folder else None
        if path is not None and path.is_file():
            try:
                marker = json.loads(path.read_text())["marker"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: not a negtune prompt-marker file (expected JSON with a 'marker' "
                                 "string)") from None
            if not isinstance(marker, str):
                raise ValueError(f"{path}: 'marker' must be a string, got {type(marker).__name__}")
            return marker
    return None


def resolve_marker(marker: str, model: str, adapter: str | None = None) -> str | None:
    """``--marker``: ``auto`` = the marker saved with the model (if any), ``none`` = no marker, else the text."""
    if marker == "auto":
        found = saved_marker(adapter, model) or None
        if found is None and not any(f and Path(f).is_dir() for f in (adapter, model)):
            logger.warning(
                "--marker auto: %s is not a local folder, so no saved quality marker was looked for; a model "
                "trained with `negtune train nat` needs --marker TEXT (its positive marker) when loaded from the hub",
                adapter or model)
        return found
    return None if marker in ("none", "") else marker
