"""What a comparison request carries and what its outcome can be, shared by the caller and the
worker: plain data, so that the caller never imports sympy or Math-Verify (only workers compare)."""

from __future__ import annotations

from dataclasses import dataclass

CORRECT = "correct"
INCORRECT = "incorrect"
GOLD_UNPARSABLE = "gold_unparsable"


@dataclass(frozen=True)
class CompareOptions:
    """What the worker needs to compare; sent with every request, so kept small."""

    float_rounding: int = 6
    numeric_precision: int = 15
    exact_rel_tol: float = 1e-12
    strict: bool = True
    allow_set_relation_comp: bool = False
    targets: tuple[str, ...] | None = None
    """None: the texts are extracted answers (answer mode). Otherwise raw texts parsed
    with these Math-Verify extraction targets and its default any_match mode."""
    plain: bool = False
    """Plain Math-Verify, `verify(parse(gold), parse(answer))` with its defaults and none of the
    rules here: the independent second opinion of an audit."""
