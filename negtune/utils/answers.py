"""Answer extraction shared by the data loaders and the verifiers."""

from __future__ import annotations

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str | None) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}`` / ``\\boxed 5``) in ``text``, braces balanced.

    Returns None when there is none or the last one is not closed.
    """
    if not text:
        return None
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    # "\boxed 5" form: content is the next whitespace-delimited token.
    if i < len(text) and text[i] == " ":
        token = text[i + 1 :].split(maxsplit=1)
        return token[0].rstrip("$.") if token else None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def strip_math_delimiters(answer: str) -> str:
    """``$x$`` -> ``x``; ``\\(x\\)`` -> ``x``; surrounding whitespace removed."""
    s = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left) : len(s) - len(right)].strip()
    return s


def format_number(value: float | int) -> str:
    """27.0 -> "27"; 0.5 -> "0.5" (answers stored as floats in some files)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
