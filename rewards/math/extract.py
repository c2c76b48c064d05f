"""Find the final answer in an R1-style completion, as a plain string.

Policy, in order:
1. Reasoning never counts: only text after the last `</think>` is searched. A
   `<think>` that is never closed means the completion is all reasoning.
2. If an `<answer>` block exists (the last one; a missing `</answer>` runs to
   the end), the answer is its last `\\boxed{}`, else its whole content with an
   "answer is:"-style lead-in and a sentence-final period removed.
3. Otherwise the answer is the last `\\boxed{}`.
4. Anything else is no answer.

This runs in the caller, outside the worker deadline, so it is plain string
scanning, linear in the completion length: no regex backtracking, no parsing.
The result is the cache key for the comparison, so it is returned stripped and
otherwise exactly as written.
"""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LEAD_IN = re.compile(r"^(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE)


def extract_answer(completion: str) -> str | None:
    """The answer string of a completion, or None when it gives none."""
    visible = _outside_reasoning(completion)
    block = _last_answer_block(visible)
    if block is not None:
        boxed = last_boxed(block)
        answer = boxed if boxed is not None else _LEAD_IN.sub("", block.strip()).removesuffix(".")
    else:
        answer = last_boxed(visible)
    if answer is None:
        return None
    answer = answer.strip()
    return answer or None


def _outside_reasoning(text: str) -> str:
    close = text.rfind(_THINK_CLOSE)
    if close >= 0:
        return text[close + len(_THINK_CLOSE) :]
    open_ = text.find(_THINK_OPEN)
    if open_ >= 0:
        return text[:open_]
    return text


def _last_answer_block(text: str) -> str | None:
    start = text.rfind(_ANSWER_OPEN)
    if start < 0:
        return None
    body = text[start + len(_ANSWER_OPEN) :]
    end = body.find(_ANSWER_CLOSE)
    return body if end < 0 else body[:end]


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` (or `\\fbox{...}`) in `text`."""
    closing = _matching_braces(text)
    # Latest first; a truncated or malformed one gives way to the one before it.
    for match in reversed(list(_BOX_OPEN.finditer(text))):
        brace = match.end() - 1
        if brace in closing:
            return text[brace + 1 : closing[brace]]
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Opening-brace index -> its closing-brace index, in one pass (escaped \\{ \\} are content)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs
