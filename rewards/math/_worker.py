"""The pool worker's entry points: one request in, plain strings out."""

from __future__ import annotations

import sys

from rewards.math.compare import CompareOptions, judge

# Python refuses int<->str conversions past 4,300 digits to bound their quadratic
# cost; here the pool's deadline bounds every call, so a long exact answer is
# compared rather than reported as unparsable.
sys.set_int_max_str_digits(0)


def handle(request: tuple[str, str, CompareOptions]) -> tuple[str, str, str]:
    """(gold, answer, options) -> (outcome, gold as parsed, answer as parsed)."""
    gold, answer, options = request
    judgement = judge(gold, answer, options)
    return judgement.outcome, judgement.gold, judgement.answer


def warmup() -> None:
    """Compile Math-Verify's regexes and latex2sympy's parser before the first real call."""
    judge("\\frac{1}{2}", "0.5", CompareOptions())
    judge("x = 3", "3", CompareOptions())
