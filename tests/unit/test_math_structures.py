"""The exact fast path for tuples, sets, intervals and inequalities of plain numbers
(rewards.math.structures), checked against the slow path it stands in for (latex2sympy, sympy's
sets, Math-Verify's `verify`) on generated pairs, like an optimised routine against its reference."""

from __future__ import annotations

import itertools
import logging
import random

import pytest
import sympy

from rewards.math.compare import CORRECT, INCORRECT, CompareOptions, _judge_parsed
from rewards.math.sets import bound_set
from rewards.math.structures import exact_structures_equal

NUMBERS = ["0", "1", "2", "-1", "3", "\\frac{1}{2}", "1/2", "-\\frac{3}{2}", "0.5", "0.1", "\\frac{1}{10}",
           "\\infty", "-\\infty"]
VARIABLES = ["x", "y", "f(x)"]
LESS, GREATER = ["<", "\\le", "\\leq", "\\lt"], [">", "\\ge", "\\geq", "\\gt"]
CONNECTIVES = ["\\text{ or }", "\\text{ and }", ",", " or ", " and "]


def _generated_text(rng: random.Random) -> str:
    def number() -> str:
        return rng.choice(NUMBERS)

    def interval() -> str:
        return f"{rng.choice('([')}{number()}, {number()}{rng.choice(')]')}"

    def relation(variable: str) -> str:
        kind = rng.randrange(4)
        if kind == 0:
            return f"{variable} {rng.choice(LESS + GREATER)} {number()}"
        if kind == 1:
            return f"{number()} {rng.choice(LESS + GREATER)} {variable}"
        if kind == 2:
            ops = rng.choice([LESS, GREATER])
            return f"{number()} {rng.choice(ops)} {variable} {rng.choice(ops)} {number()}"
        return f"{variable} \\in {interval()}"

    kind = rng.randrange(10)
    if kind == 8:
        return ", ".join(f"{rng.choice(VARIABLES[:2])} = {number()}" for _ in range(rng.choice([1, 1, 2])))
    if kind == 9:
        return number()
    if kind == 0:
        return interval()
    if kind == 1:
        return "(" + ", ".join(number() for _ in range(rng.choice([2, 3]))) + ")"
    if kind == 2:
        return "\\{" + ", ".join(number() for _ in range(rng.choice([1, 2, 3]))) + "\\}"
    if kind == 3:
        return ", ".join(number() for _ in range(rng.choice([2, 3])))
    if kind == 4:
        return f"{interval()} \\cup {interval()}"
    variable = rng.choice(VARIABLES)
    if kind in (5, 6):
        return relation(variable)
    return f"{relation(variable)}{rng.choice(CONNECTIVES)}{relation(variable)}"


def _generated_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        gold = _generated_text(rng)
        # half the answers are the gold rewritten (spacing, a fraction as a decimal), so equal pairs occur
        rewritten = gold.replace(", ", " , ").replace("\\frac{1}{2}", "0.5")
        answer = _generated_text(rng) if rng.random() < 0.5 else rewritten
        pairs.append((gold, answer))
    return pairs


def test_fast_path_verdicts_match_the_sympy_path_on_generated_pairs(seed: int = 13) -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    decided, disagreements = 0, []
    for gold, answer in _generated_pairs(400, seed=seed):
        fast = exact_structures_equal(gold, answer)
        if fast is None:
            continue
        decided += 1
        # the slow path exactly as compare.judge would reach it without the fast path
        slow = _judge_parsed(gold, answer, CompareOptions()).outcome
        if slow != (CORRECT if fast else INCORRECT):
            disagreements.append((gold, answer, fast))
    assert not disagreements, disagreements
    assert decided >= 80, f"only {decided} generated pairs took the fast path"


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("x \\in [-2,7]", "-2 \\le x \\le 7"),
        ("(0, 4]", "y>0 \\text{ and } y \\le 4"),
        ("(-\\infty, 1) \\cup (2, \\infty)", "x<1 \\text{ or } x>2"),
        ("x \\geq 3", "3 \\leq x"),
        ("(0, 2)", "(0, 1] \\cup (1, 2)"),
        ("\\{1, \\frac{1}{2}\\}", "\\{0.5, 1\\}"),
        ("(\\frac{1}{2}, -3)", "(0.5, -3)"),
        ("0<f(x)<1", "(0,1)"),
        ("x = 1, y = 4", "y=4, x=1"),
        ("3", "x = 3"),
        ("k = \\frac{1}{2}", "0.5"),
    ],
)
def test_equal_structures_are_equal(gold: str, answer: str) -> None:
    assert exact_structures_equal(gold, answer) is True


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("x \\in [-2,7]", "-2 < x \\le 7"),
        ("(0,9)", "[0,9)"),
        ("(1, 2, 3)", "(1, 3, 2)"),
        ("\\{1, 2\\}", "\\{1, 3\\}"),
        ("(-\\infty, 1) \\cup (2, \\infty)", "x<1 \\text{ or } x>3"),
        ("x = 1, y = 4", "x = 1, y = 5"),
        ("4", "k = 5"),
    ],
)
def test_different_exact_structures_differ(gold: str, answer: str) -> None:
    assert exact_structures_equal(gold, answer) is False


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("(\\frac{3}{5}, \\frac{8}{3}]", "(0.6, 2.6667]"),  # decimals: Math-Verify's rounding decides
        ("x < 0.1", "x < \\frac{1}{10}"),  # a decimal end of a set: sympy's binary float decides
        ("(1, 2)", "\\{1, 2\\}"),  # forms that differ
        ("1,000", "1, 0"),  # maybe a number with a digit group
        ("x > 0 \\text{ and } y < 4", "(0, 4)"),  # two variables
        ("x \\in (0,1) \\text{ or } x>3", "(0, 1) \\cup (3, \\infty)"),  # split where the sympy path splits
        ("(1, 2, 3]", "(1, 2, 3]"),
        ("x^2 < 4", "(-2, 2)"),
        ("x = 3", "y = 3"),  # which variable is named: Math-Verify's strict mode decides
        ("x = 1, y = 1", "y = 1, x = 1"),  # Math-Verify pairs equations sorted by value: ties are its own
    ],
)
def test_everything_else_is_left_to_the_slow_path(gold: str, answer: str) -> None:
    assert exact_structures_equal(gold, answer) is None


def test_bounds_on_a_variable_are_the_sets_sympy_solves_for() -> None:
    # rewards.math.sets builds these intervals directly instead of calling as_set (its solver)
    x = sympy.Symbol("x", real=True)
    bounds = [sympy.Integer(5), sympy.Rational(-3, 2), sympy.Float(0.5), sympy.Integer(0)]
    relations = [sympy.Lt, sympy.Le, sympy.Gt, sympy.Ge]
    cases = [op(x, b) for op in relations for b in bounds] + [op(b, x) for op in relations for b in bounds]
    cases += [sympy.And(lo(x, a), hi(x, b)) for lo in relations for hi in relations
              for a, b in itertools.combinations(bounds, 2)]
    for relation in cases:
        if relation not in (sympy.true, sympy.false):
            assert bound_set(relation) == relation.as_set(), relation
    assert bound_set(sympy.Lt(x**2, 4)) is None
    assert bound_set(sympy.Gt(-x, -1)) is None
