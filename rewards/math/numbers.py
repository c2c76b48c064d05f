"""The fast path: what most completions are, compared without sympy.

Most R1 answers to most math sets are integers, decimals or fractions. Two such texts are
compared exactly, with Python's `fractions.Fraction`, in microseconds: equal values are
CORRECT, and two exact (decimal-point-free) values that differ are INCORRECT. A percent may
mean either reading (`28\\%` is 28 or 0.28), as in Math-Verify. A decimal
that differs from its gold goes on to Math-Verify, whose rounding rule (`float_rounding`
places) decides, as before. Texts are bounded in length, so Fraction's arithmetic is too.
"""

from __future__ import annotations

import re
from fractions import Fraction

_MAX_DIGITS = 400  # beyond this the comparison runs in sympy, under the worker's deadline

_GROUPED = re.compile(r"^-?[1-9]\d{0,2}(?:(?:\{,\}|,)\d{3})+(?:\.\d+)?$")  # 7,425,000 and 7{,}425{,}000
_PLAIN = re.compile(r"^-?\d+(?:\.\d+)?$")
_SLASH = re.compile(r"^(?P<num>-?\d+)/(?P<den>\d+)$")
_FRAC = re.compile(r"^(?P<sign>-?)\\frac\{(?P<num>-?\d+)\}\{(?P<den>\d+)\}$")
_LIST_COMMA = re.compile(r",\s")
_DECIMAL_COMMA = re.compile(r"^-?(?:\d+,(?:\d{1,2}|\d{4,})|0,\d+)$")  # never digit groups: 1,22 and 0,111
# Spacing goes, except between two digits: `1 2` is not 12 (digit groups are read in rewards.math.reading)
_SQUEEZE = re.compile(r"(?<!\d)(?:\s|\\[,;:! ])+|(?:\s|\\[,;:! ])+(?!\d)|\\left(?![a-zA-Z])|\\right(?![a-zA-Z])")


def squeeze(text: str) -> str:
    """A text without spacing and `\\left`/`\\right`, `\\dfrac` as `\\frac`: equal squeezed texts are equal."""
    return _SQUEEZE.sub("", text).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


def exact_numbers_equal(gold: str, answer: str) -> bool | None:
    """Whether two plain numbers are equal; None when either is not a plain number, or when a
    decimal differs from its gold (Math-Verify's rounding rule then decides)."""
    if _LIST_COMMA.search(gold) or _LIST_COMMA.search(answer):
        return None  # `32, 349` is a list of two numbers, never 32349
    gold, answer = squeeze(gold), squeeze(answer)
    if len(gold) > _MAX_DIGITS or len(answer) > _MAX_DIGITS:
        return None
    # 1,22 beside 1.22 is a decimal comma, not a list of two numbers
    if "." in gold and _DECIMAL_COMMA.match(answer):
        answer = answer.replace(",", ".")
    elif "." in answer and _DECIMAL_COMMA.match(gold):
        gold = gold.replace(",", ".")
    gold_values, answer_values = _readings(gold), _readings(answer)
    if not gold_values or not answer_values:
        return None
    if gold_values & answer_values:
        return True
    return False if "." not in gold + answer else None


_PERCENT = re.compile(r"\\?%$")


def _readings(text: str) -> set[Fraction]:
    """The values a plain number may mean: `p\\%` is p/100 and, as Math-Verify also accepts, p. A
    percent of a fraction (`\\frac{25}{2}\\%`) is read here: latex2sympy cannot parse it."""
    percent = _PERCENT.search(text)
    value = plain_value(text[: percent.start()] if percent else text)
    if value is None:
        return set()
    return {value, value / 100} if percent else {value}


def plain_value(text: str) -> Fraction | None:
    """The value of an integer, decimal or fraction (`3/4`, `-\\frac{3}{4}`) written without spacing."""
    if "," in text:
        if not _GROUPED.match(text):
            return None
        text = text.replace("{,}", "").replace(",", "")
    if _PLAIN.match(text):
        return Fraction(text)
    match = _SLASH.match(text) or _FRAC.match(text)
    if match is None:
        return None
    denominator = int(match.group("den"))
    if denominator == 0:
        return None
    value = Fraction(int(match.group("num")), denominator)
    return -value if match.groupdict().get("sign") else value


def plain_decimal(text: str) -> str | None:
    """An integer or a decimal (digit groups allowed) as Python reads it, `7425000` for `7{,}425{,}000`."""
    if _LIST_COMMA.search(text):
        return None
    text = squeeze(text)
    if len(text) > _MAX_DIGITS or not (_PLAIN.match(text) or _GROUPED.match(text)):
        return None
    return text.replace("{,}", "").replace(",", "")


_DECIMAL_LITERAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])")
_MIN_SIGNIFICANT = 4


def shown_rounding(answer: str, float_rounding: int) -> int:
    """Places to compare an answer's decimals at: fewer than `float_rounding` when the answer
    states fewer, with at least 4 significant digits (0.3333 for 1/3, 2.6667 for 8/3); 0.33
    stays at `float_rounding`, too coarse to tell 1/3 from 0.33."""
    best = float_rounding
    for whole, places in _DECIMAL_LITERAL.findall(answer):
        significant = len((whole + places).lstrip("0"))
        if len(places) < best and significant >= _MIN_SIGNIFICANT:
            best = len(places)
    return best
