"""Sets of reals however they are written: intervals, unions, `x \\in S`, inequalities, set-builder.

`y \\in (0, 4]`, `0 < y \\le 4`, `y>0 \\text{ and } y \\le 4` and `(0, 4]` are one set. Math-Verify
compares a relation with a set only when `allow_set_relation_comp` is on, and its normaliser turns
`\\text{ and }` and `\\text{ or }` both into a comma, losing which one was meant. Here each side is
turned into a sympy set, when it is one: a set as parsed (Interval, Union, EmptySet, ...), `x \\in S`,
or inequalities in one variable joined by and/or (split at the connectives in the text, so "or" is a
union and "and" or a comma an intersection). Two sides that are both sets compare as sets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sympy import And, Contains, Dummy, EmptySet, Eq, Intersection, Interval, Or, Set, Symbol, Union, oo
from sympy.core.function import AppliedUndef
from sympy.core.relational import GreaterThan, LessThan, Relational, StrictGreaterThan, StrictLessThan

from rewards.math.structures import AND_CONNECTIVE, INEQUALITY, OR_CONNECTIVE

Parser = Callable[[str], list[Any]]


def relation_sets(parsed: list[Any], text: str, parse_part: Parser) -> Set | None:
    """The set a parsed text states, or None when it is not a set of reals."""
    first = parsed[0] if parsed else None
    if isinstance(first, Set) and not _is_finite_list(first):
        return first
    if isinstance(first, Eq | Contains) and isinstance(first.args[0], Symbol) and isinstance(first.args[1], Set):
        return first.args[1] if not _is_finite_list(first.args[1]) else None
    if not INEQUALITY.search(text):
        return None
    union = []
    for alternative in OR_CONNECTIVE.split(text):
        parts = [p for p in AND_CONNECTIVE.split(alternative) if p.strip()] if len(alternative) < 400 else [alternative]
        sets = [_one_relation(parse_part(part)) for part in parts]
        if not sets or any(s is None for s in sets):
            return None
        union.append(Intersection(*sets) if len(sets) > 1 else sets[0])
    return Union(*union) if len(union) > 1 else union[0]


def _is_finite_list(value: Set) -> bool:
    # `{1, 2}` and `1, 2` are lists of answers, compared element by element by Math-Verify
    return value.is_FiniteSet and value is not EmptySet


def _one_relation(parsed: list[Any]) -> Set | None:
    first = parsed[0] if parsed else None
    if isinstance(first, Eq | Contains) and isinstance(first.args[1], Set):
        return first.args[1]
    if isinstance(first, Relational | And | Or) and not isinstance(first, Eq):
        applied = first.atoms(AppliedUndef)
        if len(applied) == 1:  # `0 < f(x) < 1` bounds the values of f(x): one unknown, as x would be
            first = first.xreplace({applied.pop(): Dummy("value", real=True)})
        if len(first.free_symbols) != 1:
            return None
        bounds = bound_set(first)
        if bounds is not None:
            return bounds
        try:
            return first.as_set()
        except (NotImplementedError, TypeError, ValueError):
            return None
    return None


_INTERVALS = {
    StrictLessThan: lambda b: Interval.open(-oo, b),
    LessThan: lambda b: Interval(-oo, b),
    StrictGreaterThan: lambda b: Interval.open(b, oo),
    GreaterThan: lambda b: Interval(b, oo),
}


def bound_set(relation: Any) -> Set | None:
    """`x >= 5`, `5 > x`, `-2 \\le x \\le 7`: bounds on a bare real variable by finite numbers, as the
    interval `as_set` would find, built directly (`as_set` runs sympy's inequality solver: 7-30 ms
    each). None for anything else."""
    if isinstance(relation, And):
        parts = [bound_set(part) for part in relation.args]
        return None if any(p is None for p in parts) else Intersection(*parts)
    if type(relation) not in _INTERVALS:
        return None
    if isinstance(relation.rhs, Symbol):
        relation = relation.reversed  # `5 > x` is `x < 5`
    variable, bound = relation.lhs, relation.rhs
    if not (isinstance(variable, Symbol) and variable.is_real and bound.is_Number and bound.is_finite):
        return None
    return _INTERVALS[type(relation)](bound)


def stated_as_set(parsed: list[Any]) -> bool:
    """Parsed as a set without any relation in it: an interval or a union as written."""
    first = parsed[0] if parsed else None
    return isinstance(first, Set) and not first.atoms(Relational)


def sets_equal(gold: Set, answer: Set) -> bool:
    if gold == answer:
        return True
    try:
        return bool(gold.symmetric_difference(answer).is_empty)
    except (TypeError, ValueError, NotImplementedError):
        return False
