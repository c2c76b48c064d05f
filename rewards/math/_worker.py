"""Entry points of a comparison, in a pool worker or inline in a host that kills at the verifier's
deadline: one request in, plain strings out."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rewards.math.compare import CompareOptions, judge


def handle(request: tuple[str, str, CompareOptions]) -> tuple[str, str, str]:
    """(gold, answer, options) -> (outcome, gold as parsed, answer as parsed)."""
    gold, answer, options = request
    judgement = judge(gold, answer, options)
    return judgement.outcome, judgement.gold, judgement.answer


@contextlib.contextmanager
def unlimited_int_digits() -> Iterator[None]:
    """Python refuses int<->str conversions past 4,300 digits to bound their quadratic cost; under a
    kill-enforced deadline a long exact answer is compared rather than reported as unparsable.
    Inline only for the comparison, so the rest of the host process keeps the guard."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def warm_parsers() -> None:
    """Compile Math-Verify's regexes and latex2sympy's parser, and take sympy's first simplify, set
    solving, 30-digit evaluation and polynomial cancelling (~0.25 s once), before the first real call."""
    for gold, answer in (("\\frac{1}{2}", "0.5"), ("x = 3", "3"), ("\\frac{3}{4}", "\\sqrt{3}/2"),
                         ("(0, 1]", "0 < x \\le 1"), ("\\sqrt{2}", "\\sqrt{3}"), ("2x + 1", "x^{2} y")):
        judge(gold, answer, CompareOptions())
    judge("\\frac{1}{2}", "0.5", CompareOptions(plain=True))


def warmup(_: None = None) -> None:
    """A pool worker's set-up: every call it serves runs under the pool's deadline."""
    sys.set_int_max_str_digits(0)
    warm_parsers()
