"""How an answer (or a gold) is read before anything is parsed: plain string rewriting.

An R1 answer block holds what a model chose to write: a bare expression, a run of boxed
answers, a sentence, or a whole worked solution. `read` turns each into the one string the
comparison parses, and says whether it was prose. Presentation (emphasis, lead-ins, wrappers)
and boxed runs are the extraction's (rewards.math.extract), shared with the gold here. Every
rule is a class of inputs peers get wrong, each with its reason:

- Notation latex2sympy misreads: repeating decimals (`0.\\overline{6}`), numbers in a
  base (`31_4`, read as 31 otherwise: different bases must differ), empty-set synonyms,
  plain-text digit groups (`1 000`), upright constants, thin-space thousands separators,
  `\\pm` in a list (`x = \\frac{-1 \\pm \\sqrt{13}}{4}` is two items).
- Lists written in words: `$1$ and $2$ and $3$` is `1, 2, 3`; in a gold, "or" between values
  lists them too, and all boxes listed with "and" or commas are its answer.
- Hedges: "or" between values in an answer offers alternatives (never one answer); between
  relations it states a set (`x < 1` or `x > 2`).
- Labels: a ratio's name (`AB:CD = 3:5`) and the labels of a list of values (`k = 45, n = 2`,
  `p=5,q=2;p=7,q=2`) are dropped when the other side states values only.
- Text answers: a gold in words matches the answer's words, alone or ending a short sentence
  that negates nothing ("The sequence is increasing.").
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from fractions import Fraction

from rewards.math.extract import boxed_spans, final_answer_text, strip_presentation

# --- notation ------------------------------------------------------------------------------

_UPRIGHT_CONSTANT = re.compile(r"\\(?:mathrm|text|textrm|operatorname|mathit)\s*\{\s*([ei])\s*\}")
# A thin space between digit groups (1\,000) is a thousands separator; left in, latex2sympy2 reads a product.
_THIN_SPACE_GROUP = re.compile(r"(?<=\d)\\[,;: ](?=\d{3}(?!\d))")
_SPACE_GROUPED = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_REPEATING = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\\(?:overline|bar|dot)\s*\{(\d+)\}")
_EMPTY_SET = re.compile(r"\\varnothing|\\O\b|∅|\\\{\s*\\\}|\\left\\\{\s*\\right\\\}|\\emptyset\{\}")
_BASE = re.compile(r"(?<![\w\\])([0-9A-Fa-f]+)_\{?\(?([0-9]{1,2})\)?\}?(?![\w{])")


def rewrite_constants(text: str) -> str:
    """Upright constants and thin-space digit groups, which Math-Verify's normaliser mangles anywhere
    in a text (also in raw model output parsed Math-Verify's way)."""
    return _THIN_SPACE_GROUP.sub("", _UPRIGHT_CONSTANT.sub(r"\1", text))


def rewrite_notation(text: str) -> str:
    """Rewrite the notations of one answer latex2sympy misreads into ones it reads correctly."""
    text = rewrite_constants(text)
    if _SPACE_GROUPED.match(text):
        text = text.replace(" ", "")
    text = _REPEATING.sub(_repeating_to_fraction, text)
    text = _EMPTY_SET.sub(r"\\emptyset", text)
    return _BASE.sub(_in_base_ten, text)


def _repeating_to_fraction(match: re.Match[str]) -> str:
    sign, whole, fixed, period = match.groups()
    value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), 10 ** len(fixed)) + Fraction(
        int(period), 10 ** len(fixed) * (10 ** len(period) - 1)
    )
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _in_base_ten(match: re.Match[str]) -> str:
    digits, base = match.group(1), int(match.group(2))
    if not 2 <= base <= 36:
        return match.group(0)
    try:
        return str(int(digits, base))
    except ValueError:  # not a numeral of that base (x_1 never gets here: the digits must be a numeral)
        return match.group(0)


# --- hedges, labels, text answers ----------------------------------------------------------

_OR = re.compile(r"\\text\s*\{\s*or\s*\}|\bor\b|\\lor\b|\\vee\b", re.IGNORECASE)
_RELATION = re.compile(r"[=<>≤≥]|\\(?:le|ge|leq|geq|lt|gt|neq|ne|in|notin)\b")


def is_hedged(text: str) -> bool:
    """Several values offered as alternatives: "3, 4, or 5", `\\boxed{3}` or `\\boxed{4}`. An "or"
    between relations (`x < 1` or `x > 2`, `x = 1` or `x = 2`) states a set, not a hedge."""
    parts = _OR.split(text)
    return len(parts) > 1 and not any(_RELATION.search(part) for part in parts)


# `AB:CD = 3:5`, `S_{MBCN}:S = 7:32`: the name of a ratio, not part of its value
_RATIO_LABEL = re.compile(r"^[A-Za-z](?:[A-Za-z\d_{}\s]|\\[a-z]+)*:(?:[A-Za-z\d_{}\s]|\\[a-z]+)*=(?=[^=]+$)")
# `x_1 = 2`, `k = 45`, `y_{2}=3x+1`: one item of a list of labelled values
_ITEM_LABEL = re.compile(r"^\s*[A-Za-z](?:_\{?[A-Za-z\d]+\}?)?\s*=(?=[^=<>]+$)")
_ITEM_SEPARATOR = re.compile(r",|\\q?quad|\\text\s*\{\s*and\s*\}|\band\b")


def unlabel(gold: str, answer: str) -> tuple[str, str]:
    """Drop labels where one side names its values and the other does not: `k = 45, n = 2` against
    `45, 2`, `x_1 = a, x_2 = b` against `a and b`, and ratio names on either side."""
    gold, answer = _RATIO_LABEL.sub("", gold, count=1), _RATIO_LABEL.sub("", answer, count=1)
    gold_values, answer_values = _labelled_values(gold), _labelled_values(answer)
    if gold_values is not None and "=" not in answer:
        gold = gold_values
    elif answer_values is not None and "=" not in gold:
        answer = answer_values
    return gold.strip(), answer.strip()


def _labelled_values(text: str) -> str | None:
    """The values of a list of labelled items, `(5, 2), (7, 2)` for `p=5,q=2;p=7,q=2`; None unless
    every item is labelled and there are several."""
    groups = [_split_outside_brackets(group, _ITEM_SEPARATOR) for group in _split_outside_brackets(text, _GROUP)]
    items = [item for group in groups for item in group]
    if len(items) < 2 or not all(_ITEM_LABEL.match(item) for item in items):
        return None
    values = [[_ITEM_LABEL.sub("", item, count=1).strip() for item in group] for group in groups]
    if len(values) == 1:
        return ", ".join(values[0])
    return ", ".join("(" + ", ".join(group) + ")" for group in values)


_GROUP = re.compile(r";")


def _split_outside_brackets(text: str, separator: re.Pattern[str]) -> list[str]:
    """Split at `separator` where it is not inside (), [], {}; empty parts dropped."""
    parts, depth, start = [], 0, 0
    for match in re.finditer(r"[([{]|[)\]}]|" + separator.pattern, text):
        token = match.group(0)
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
        elif depth == 0:
            parts.append(text[start : match.start()])
            start = match.end()
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


_TEXT_MARKUP = re.compile(r"\\(?:text|textbf|mathrm|textit|emph|mbox)\s*\{([^{}]*)\}")
_PLAIN_WORDS = re.compile(r"^[A-Za-z][A-Za-z\s'-]*$")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "min", "max", "gcd", "lcm", "det", "mod"}
_NEGATIONS = {"not", "no", "never", "neither", "nor", "isn't", "aren't", "cannot", "none"}
_MAX_SENTENCE_WORDS = 12


def text_answer_matches(gold: str, answer: str) -> bool | None:
    """For a gold that is words ("increasing", `\\text{Monday}`): does the answer say it, alone or
    as the end of a short sentence ("The sequence is increasing") that negates nothing? None when
    the gold is not words."""
    gold_words = _words(gold)
    if gold_words is None or not any(len(w) >= 3 and w not in _MATH_WORDS for w in gold_words):
        return None
    answer_words = _words(answer) or []
    if answer_words == gold_words:
        return True
    tail = answer_words[-len(gold_words) :]
    negated = bool(_NEGATIONS.intersection(answer_words) - _NEGATIONS.intersection(gold_words))
    return tail == gold_words and len(answer_words) <= _MAX_SENTENCE_WORDS and not negated


def _words(text: str) -> list[str] | None:
    plain = _TEXT_MARKUP.sub(r"\1", text).replace("$", " ").strip().rstrip(".!")
    if not _PLAIN_WORDS.match(plain):
        return None
    return plain.lower().replace("-", " ").split()


@dataclass(frozen=True)
class Reading:
    text: str
    """What the comparison parses."""
    prose: bool
    """A sentence or a worked solution: its final expression is found Math-Verify's way."""


_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH_SPAN = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+(?:\{[^{}]*\})?", re.DOTALL)


def is_prose(text: str) -> bool:
    """Words outside any math: a sentence, not an expression (`x \\in (0, 4]` is not prose)."""
    return len(_WORD.findall(_MATH_SPAN.sub(" ", text))) >= 3


def read(text: str, gold: bool = False) -> Reading:
    """The string a gold or an extracted answer is compared by.

    A gold is written by a data set's authors, not hedged by a policy: boxes listed with "and" or
    commas are all its answer (`\\boxed{1} papers and \\boxed{2} bins`), and "or" between values
    lists them (`$21,16$ or $11$`)."""
    boxes = boxed_spans(text) if gold else []
    if len(boxes) > 1 and all(_LISTING.search(text[a[2] + 1 : b[0]]) for a, b in itertools.pairwise(boxes)):
        text = ", ".join(text[start:end].strip() for _, start, end in boxes)
    text = strip_presentation(final_answer_text(text))
    if is_prose(text):
        return Reading(rewrite_notation(text), prose=True)
    text = _expand_plus_minus(_as_list(text, or_lists=gold and is_hedged(text)))
    return Reading(rewrite_notation(text), prose=False)


def _expand_plus_minus(text: str) -> str:
    """`a, b \\pm c` as `a, b + c, b - c` when the list has other items (alone, Math-Verify reads \\pm)."""
    items = _split_outside_brackets(text, _COMMA)
    if len(items) < 2 or not any(item.count("\\pm") == 1 for item in items):
        return text
    expanded = []
    for item in items:
        if item.count("\\pm") == 1:
            expanded += [item.replace("\\pm", "+"), item.replace("\\pm", "-")]
        else:
            expanded.append(item)
    return ", ".join(expanded)


_COMMA = re.compile(",")


_LISTING = re.compile(r"\band\b|[,;]|\\q?quad")
_INLINE_SPAN = re.compile(r"(?<!\\)\$([^$]+)(?<!\\)\$")
_AND_LIST = re.compile(r"\s*(?:\\text\s*\{\s*and\s*\}|\band\b)\s*")
_OR_LIST = re.compile(r"\s*(?:\\text\s*\{\s*or\s*\}|\bor\b)\s*")


def _as_list(text: str, or_lists: bool) -> str:
    """`$1$ and $2$ and $3$` as `1, 2, 3`: several math spans joined by words are one list."""
    if len(_INLINE_SPAN.findall(text)) > 1:
        text = _INLINE_SPAN.sub(r"\1", text)
    text = _AND_LIST.sub(", ", text)
    return _OR_LIST.sub(", ", text) if or_lists else text
