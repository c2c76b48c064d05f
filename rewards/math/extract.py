"""Find the final answer in an R1-style completion, as a plain string.

Policy, in order:
1. Reasoning never counts: only text after the last `</think>` is searched. A
   `<think>` that is never closed means the completion is all reasoning.
2. If an `<answer>` block exists (the last one; a missing `</answer>` runs to
   the end), the answer is its final run of `\\boxed{}` (one box, or several joined
   by connective text only: `\\boxed{2}, \\boxed{5}`, `\\boxed{x=1} \\text{ and } \\boxed{y=4}`),
   read as the list `2, 5` (`3 or 4` when the connective says or). A block that states
   "the final answer is ..." after its last box, or has no box, is the answer whole
   (a sentence or a worked solution; rewards.math.reading finds its final expression).
3. Otherwise the answer is the final run of `\\boxed{}` after the reasoning.
4. Anything else is no answer.

This runs in the caller, outside the worker deadline, so it is plain string
scanning, linear in the completion length: no regex backtracking, no parsing.
The result is the cache key for the comparison, so it is returned without its presentation
(emphasis, lead-ins, a whole-answer `$…$`, a final period) and otherwise exactly as written.
"""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_ANSWER_OPEN = "<answer>"
_ANSWER_CLOSE = "</answer>"
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_ANSWER_STATED = re.compile(r"final answer.{0,100}?\bis\b", re.IGNORECASE | re.DOTALL)


def extract_answer(completion: str) -> str | None:
    """The answer string of a completion, or None when it gives none."""
    visible = _outside_reasoning(completion)
    block = _last_answer_block(visible)
    if block is not None:
        answer = final_answer_text(block)
    else:
        boxes = boxed_spans(visible)
        answer = final_boxed_run(visible, boxes) if boxes else None
    if answer is None:
        return None
    answer = strip_presentation(answer)
    return answer or None


_LEAD_IN = re.compile(
    r"^\s*(?:(?:so|thus|hence|therefore|finally|in conclusion)\s*,?\s*)?"
    r"(?:the\s+)?(?:final\s+)?(?:answer|result|solution)s?(?:\s+(?:is|are))?\s*[:：]?\s*"
    r"|^\s*(?:so|thus|hence|therefore)\s*,?\s+",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"^(\*\*|__|\*|_)(.+)\1$", re.DOTALL)
_WHOLE_MARKUP = re.compile(r"^\\(?:mathbf|textbf|boldsymbol|bm|mathrm|displaystyle)\s*\{(.*)\}$", re.DOTALL)
_MAX_LAYERS = 6  # bounds the work on hostile nesting (`****…`); real answers have two or three
_WRAPPED = re.compile(r"^(?:\$\$?|\\\(|\\\[)(.*?)(?:\$\$?|\\\)|\\\])$", re.DOTALL)


def strip_presentation(text: str) -> str:
    """Remove emphasis, lead-ins, whole-answer math delimiters and a sentence-final period."""
    for _ in range(_MAX_LAYERS):
        previous = text
        text = text.strip().removesuffix(".").strip()
        text = _LEAD_IN.sub("", text, count=1)
        for pattern in (_EMPHASIS, _WRAPPED):
            match = pattern.match(text)
            if match and _balanced(match.group(match.lastindex or 1)):
                text = match.group(match.lastindex or 1)
        match = _WHOLE_MARKUP.match(text.strip())
        if match and _balanced(match.group(1)):
            text = match.group(1)
        text = text.strip().removesuffix("\\,").removesuffix("\\!").strip()
        if text == previous:
            break
    return text


def _balanced(text: str) -> bool:
    _, unmatched = _matching_braces(text)
    # `$a$ and $b$` is two math spans, not one wrapped in dollars
    return not unmatched and not any(delimiter in text for delimiter in ("$", "\\(", "\\["))


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


def final_answer_text(text: str) -> str:
    """An answer text's final boxed run, or the text whole when it has none or states its final
    answer after the last box."""
    boxes = boxed_spans(text)
    if not boxes or _FINAL_ANSWER_STATED.search(text, boxes[-1][2]) is not None:
        return text
    return final_boxed_run(text, boxes)


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` (or `\\fbox{...}`) in `text`."""
    boxes = boxed_spans(text)
    return text[boxes[-1][1] : boxes[-1][2]] if boxes else None


def boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(start of `\\boxed`, start of content, index of its closing brace) of every complete
    outermost box, in order; a truncated one is skipped."""
    closing, _ = _matching_braces(text)
    spans: list[tuple[int, int, int]] = []
    for match in _BOX_OPEN.finditer(text):
        brace = match.end() - 1
        if brace in closing and (not spans or match.start() > spans[-1][2]):
            spans.append((match.start(), brace + 1, closing[brace]))
    return spans


# Text that may sit between the boxes of one answer: punctuation, spacing, math delimiters, and the
# words of "and", "or", "for part (a)", "respectively", single-letter labels (`y_2 =`).
_GAP_MARKUP = re.compile(r"\\(?:text|textrm|mathrm)\s*\{|\\(?:q?quad|[,;:! ()\[\]]|\\)|[${}(),;.=_\s\d]")
_GAP_WORDS = {"and", "or", "for", "part", "parts", "case", "cases", "respectively", "also"}
_GAP_MAX_CHARS = 60


def final_boxed_run(text: str, boxes: list[tuple[int, int, int]]) -> str:
    """The contents of the last run of boxes joined by connective text only, as one list."""
    first = len(boxes) - 1
    hedged = False
    while first > 0:
        gap = text[boxes[first - 1][2] + 1 : boxes[first][0]]
        words = _GAP_MARKUP.sub(" ", gap).lower().split()
        if len(gap) > _GAP_MAX_CHARS or any(len(w) > 1 and w not in _GAP_WORDS for w in words):
            break
        hedged = hedged or "or" in words
        first -= 1
    items = [text[start:end].strip() for _, start, end in boxes[first:]]
    return (" or " if hedged else ", ").join(items)


def _matching_braces(text: str) -> tuple[dict[int, int], int]:
    """Opening-brace index -> its closing-brace index, in one pass (escaped \\{ \\} are content),
    and how many braces found no partner."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    unmatched = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}":
            if stack:
                pairs[stack.pop()] = i
            else:
                unmatched += 1
        i += 1
    return pairs, unmatched + len(stack)
