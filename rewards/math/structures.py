"""The fast path for answers built of plain numbers: tuples, sets, intervals, unions of intervals,
inequalities in one variable and values given to variables, compared exactly, without latex2sympy
or sympy.

In a fresh worker latex2sympy's ANTLR parse of `(0, 9)` costs 40-190 ms (full-context prediction,
which ANTLR never caches), and sympy's `as_set` of `-2 \\le x \\le 7` 10-30 ms more; plain
Math-Verify often never gets that far (it finds no `$…$` in a bare gold and gives up). Read here
with regular expressions and `fractions.Fraction`, the same comparison costs microseconds. The rules
are the slow path's (rewards.math.compare with rewards.math.sets and Math-Verify's `verify`), so
the verdicts are too: tests/unit/test_math_structures.py checks that on generated pairs.

- A relation on either side (`x \\in S`, `0 < y \\le 4`, and/or/commas between such, all in one
  variable): both sides are sets of reals, the variable's name ignored, as rewards.math.sets
  compares them; an interval `(a, b)` is one only when a < b (otherwise latex2sympy reads a tuple).
- Neither side a relation (both as written): intervals and unions (`\\cup`) of them as sets of
  reals; two bracketed lists with the same brackets and length item by item (a tuple); two
  `\\{…\\}` sets, or two bare lists `a, b`, as sets (Math-Verify reads both as FiniteSet).
- Values given to variables (`x = 3`, `x = 1, y = 4`): as a set of (variable, value) pairs when
  both sides name the same variables, each value once; one `k = 4` against a bare number by its
  value, as Math-Verify does.
- Equal is CORRECT; different is INCORRECT only when every number is exact (no decimal point):
  about decimals Math-Verify's rounding decides, and sets of reals with a decimal endpoint stay
  sympy's. Forms that differ, or anything else, return None: the slow path decides.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewards.math.numbers import plain_value, squeeze

_MAX_CHARS = 400  # longer texts take the slow path, under the worker's deadline

OR_CONNECTIVE = re.compile(r"\\text\s*\{\s*or\s*\}|\bor\b|\\lor\b|\\vee\b|\\cup\b")
AND_CONNECTIVE = re.compile(r"\\text\s*\{\s*and\s*\}|\band\b|\\land\b|\\wedge\b|,")
INEQUALITY = re.compile(r"[<>≤≥]|\\(?:le|ge|leq|geq|lt|gt)\b|\\in\b")

_INFINITY = re.compile(r"^([+-]?)\\infty$")
_DIGIT_GROUP = re.compile(r"\d,\d{3}(?!\d)")  # 1,000 may be one number: not a bare list
_SYMBOL = r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?"
_VARIABLE = rf"{_SYMBOL}|[A-Za-z]\([A-Za-z]\)"  # `0 < f(x) < 1` bounds f(x) as it would x
_LESS = {"<": False, "\\lt": False, "\\le": True, "\\leq": True}  # operator -> end included
_GREATER = {">": False, "\\gt": False, "\\ge": True, "\\geq": True}
_OPERATOR = r"<|>|\\lt|\\gt|\\leq|\\le|\\geq|\\ge"
_CHAIN = re.compile(rf"^(?:(?P<left>[^<>\\]+|-?\\frac\{{-?\d+\}}\{{\d+\}})(?P<op1>{_OPERATOR}))?"
                    rf"(?P<var>{_VARIABLE})"
                    rf"(?:(?P<op2>{_OPERATOR})(?P<right>[^<>\\]+|-?\\frac\{{-?\d+\}}\{{\d+\}}))?$")
_MEMBER = re.compile(rf"^(?P<var>{_SYMBOL})\\in(?P<set>.+)$")  # the sympy path reads no `f(x) \in S`


@dataclass(frozen=True)
class _Span:
    """One interval of reals; an infinite end is never included."""

    low: Fraction | float
    low_in: bool
    high: Fraction | float
    high_in: bool


Reals = tuple[_Span, ...]
"""A set of reals in canonical form: disjoint spans, sorted, touching ones merged."""
_EVERYTHING: Reals = (_Span(-math.inf, False, math.inf, False),)


@dataclass(frozen=True)
class _Reading:
    form: str
    """"relation", "union", "assignments", "set" (`\\{…\\}`), "list" (bare) or a list's brackets, "(]"."""
    items: tuple[Any, ...] = ()
    """The numbers of a list or set; (variable, value) pairs of assignments."""
    reals: Reals | None = None
    """The set of reals it states, when it states one."""
    exact: bool = True
    """No decimal point in any number."""


def exact_structures_equal(gold: str, answer: str) -> bool | None:
    """Whether two texts built of plain numbers state the same tuple, set or set of reals; None
    when either is something else, when their forms differ, or when decimals differ."""
    if len(gold) > _MAX_CHARS or len(answer) > _MAX_CHARS:
        return None
    g, a = _read(gold), _read(answer)
    if (g is None) != (a is None):
        return _assigned_value_equal(g or a, squeeze(answer if g else gold))
    if g is None or a is None:
        return None
    if "assignments" in (g.form, a.form):
        if g.form != a.form or sorted(v for v, _ in g.items) != sorted(v for v, _ in a.items):
            return None  # which variables are named is Math-Verify's to judge (strict mode)
        if any(len({value for _, value in r.items}) < len(r.items) for r in (g, a)):
            return None  # Math-Verify pairs equations up sorted by value: a tie pairs them arbitrarily
        if set(g.items) == set(a.items):
            return True
        return False if g.exact and a.exact else None
    if {"relation", "union"} & {g.form, a.form}:
        # Sets of reals. sympy compares a decimal end as a binary float (0.1 is not 1/10): its verdict stands
        if g.reals is None or a.reals is None or not (g.exact and a.exact):
            return None
        return g.reals == a.reals
    if g.reals and a.reals and g.exact and a.exact:  # two intervals as written
        return g.reals == a.reals
    as_sets = g.form in ("set", "list")
    if g.form != a.form or (not as_sets and len(g.items) != len(a.items)):
        return None
    if (set(g.items) == set(a.items)) if as_sets else g.items == a.items:
        return True
    return False if g.exact and a.exact else None


def _assigned_value_equal(reading: _Reading, number: str) -> bool | None:
    """`x = 3` against a bare `3`: Math-Verify compares the value given (either way round)."""
    value = plain_value(number)
    if reading.form != "assignments" or len(reading.items) != 1 or value is None:
        return None
    if reading.items[0][1] == value:
        return True
    return False if reading.exact and "." not in number else None


def _read(text: str) -> _Reading | None:
    if INEQUALITY.search(text):
        return _read_relation(text)
    text = squeeze(text)
    if "=" in text:
        return _read_assignments(text)
    if "\\cup" in text:
        spans = [_read_list(part) for part in text.split("\\cup")]
        if any(s is None or s.reals is None for s in spans):
            return None
        return _Reading("union", reals=_union(*(s.reals for s in spans)), exact=all(s.exact for s in spans))
    return _read_list(text)


def _read_list(text: str) -> _Reading | None:
    if text.startswith("\\{") and text.endswith("\\}"):
        form, inner = "set", text[2:-2]
    elif text[:1] in ("(", "[") and text[-1:] in (")", "]"):
        form, inner = text[0] + text[-1], text[1:-1]
    elif "," in text and not _DIGIT_GROUP.search(text):
        form, inner = "list", text
    else:
        return None
    values = [_number(part) for part in inner.split(",")]
    if any(v is None for v in values) or (form != "set" and len(values) < 2):
        return None
    reals = _interval(values[0], form[0] == "[", values[1], form[1] == "]") if len(form) == 2 == len(values) else None
    if reals is None and (form in ("(]", "[)") or any(isinstance(v, float) for v in values)):
        return None  # a half-open list that is no interval, or infinity outside an interval
    return _Reading(form, items=tuple(values), reals=reals, exact="." not in inner)


_ASSIGNMENT = re.compile(rf"^(?P<var>{_SYMBOL})=(?P<value>[^=]+)$")


def _read_assignments(text: str) -> _Reading | None:
    """`x=3`, `x=1,y=4`: values given to variables (as Math-Verify reads them, a set of equations)."""
    pairs = []
    for item in text.split(","):
        match = _ASSIGNMENT.match(item)
        value = plain_value(match.group("value")) if match else None
        if value is None:
            return None
        pairs.append((match.group("var"), value))
    return _Reading("assignments", items=tuple(pairs), exact="." not in text)


def _number(text: str) -> Fraction | float | None:
    infinity = _INFINITY.match(text)
    if infinity:
        return -math.inf if infinity.group(1) == "-" else math.inf
    return plain_value(text)


def _interval(low: Fraction | float, low_in: bool, high: Fraction | float, high_in: bool) -> Reals | None:
    """An interval as written: None unless low < high (latex2sympy reads `(2, 1)` as a tuple) and
    every infinite end is open."""
    if not low < high or (low_in and math.isinf(low)) or (high_in and math.isinf(high)):
        return None
    return (_Span(low, low_in, high, high_in),)


def _read_relation(text: str) -> _Reading | None:
    """`x \\in S`, or inequalities in one variable joined by or (a union) and by and or commas (an
    intersection), split where rewards.math.sets splits them."""
    member = _MEMBER.match(squeeze(text))
    if member:
        stated = None if INEQUALITY.search(member.group("set")) else _read(member.group("set"))
        if stated is None or stated.reals is None:
            return None
        return _Reading("relation", reals=stated.reals, exact=stated.exact)
    alternatives: list[Reals] = []
    variables, exact = set(), "." not in text
    for alternative in OR_CONNECTIVE.split(text):
        parts = [p for p in AND_CONNECTIVE.split(alternative) if p.strip()]
        if not parts:
            return None
        every = _EVERYTHING
        for part in parts:
            chain = _chain(squeeze(part))
            if chain is None:
                return None
            variable, reals = chain
            variables.add(variable)
            every = _intersection(every, reals)
        alternatives.append(every)
    if len(variables) != 1:
        return None
    return _Reading("relation", reals=_union(*alternatives), exact=exact)


def _chain(text: str) -> tuple[str, Reals] | None:
    """`x < 3`, `3 \\ge x`, `0 < x \\le 4`: the variable and the set it may range over."""
    match = _CHAIN.match(text)
    if match is None or (match.group("op1") is None and match.group("op2") is None):
        return None
    reals = _EVERYTHING
    for side, op in (("left", "op1"), ("right", "op2")):
        if match.group(op) is None:
            continue
        bound = plain_value(match.group(side))
        if bound is None:
            return None
        # `a < x` bounds x from below, `x < a` from above (and the reverse for >)
        op_text = match.group(op)
        less = op_text in _LESS
        included = _LESS[op_text] if less else _GREATER[op_text]
        below = less == (side == "left")
        span = _Span(bound, included, math.inf, False) if below else _Span(-math.inf, False, bound, included)
        reals = _intersection(reals, (span,))
    if match.group("op1") and match.group("op2") and (match.group("op1") in _LESS) != (match.group("op2") in _LESS):
        return None  # `1 < x > 0` is no interval as written
    return match.group("var"), reals


def _union(*sets: Reals) -> Reals:
    # Sorted by low end, an included one first, so a merged span keeps the widest low end.
    spans = sorted((s for reals in sets for s in reals), key=lambda s: (s.low, not s.low_in))
    merged: list[_Span] = []
    for span in spans:
        last = merged[-1] if merged else None
        if last is None or span.low > last.high or (span.low == last.high and not (last.high_in or span.low_in)):
            merged.append(span)
        elif span.high > last.high:
            merged[-1] = _Span(last.low, last.low_in, span.high, span.high_in)
        elif span.high == last.high and span.high_in:
            merged[-1] = _Span(last.low, last.low_in, last.high, True)
    return tuple(merged)


def _intersection(first: Reals, second: Reals) -> Reals:
    spans = []
    for a in first:
        for b in second:
            # the higher low end, an excluded one on a tie; the lower high end, likewise
            low, low_out = max((a.low, not a.low_in), (b.low, not b.low_in))
            high, high_in = min((a.high, a.high_in), (b.high, b.high_in))
            if low < high or (low == high and not low_out and high_in):
                spans.append(_Span(low, not low_out, high, high_in))
    return _union(tuple(spans))
