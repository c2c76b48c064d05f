"""Gold-versus-answer comparison on top of Math-Verify. Runs in a pool worker, or inline in a host's
killable worker (MathConfig.workers=0).

Math-Verify does the parsing (LaTeX via latex2sympy2) and the comparison
(`verify`). Around it this module fixes the false positives we found, each at
its cause:

- Number scraping. When the LaTeX of an answer fails to parse, Math-Verify's
  default `any_match` mode goes on to pick a bare number out of the same text
  (`1, 2, \\ldots, n` becomes 2; `3x-y+13=0` becomes 0; `1:2:3` as plain text
  becomes 1). We parse the extracted answer with `extraction_mode="first_match"`,
  so a failed parse stays a failed parse.
- Lists latex2sympy misreads. A ratio `a:b:c` is read as `(a/b)/c`, and an
  ellipsis is dropped from a list. Ratios of three or more terms are compared
  as proportions, term by term; a list with an ellipsis is compared term by
  term, in order, with the ellipses in the same places.
- Notation latex2sympy misreads (rewards.math.reading): thin-space and plain-space digit
  groups (`1\\,000`, `1 000` read as products), upright constants (unit stripping eats a
  trailing `\\mathrm{e}`, so `1-\\frac{1}{\\mathrm{e}}` would lose its `e`), repeating decimals,
  numbers in a base (`31_4` read as 31), empty-set synonyms, `\\pm` inside a list.
- How an answer is written (rewards.math.reading): a run of boxes is one list; a sentence or
  worked solution is searched for its final expression; labels (`AB:CD = 3:5`, `k = 45, n = 2`)
  are dropped where the other side has none; a gold in words matches a short sentence that ends
  with it and negates nothing; several candidates offered with "or" never match a single gold.
- Equal strings and plain numbers (rewards.math.numbers): equal squeezed strings are CORRECT
  before any parsing (an unparsable gold equal to its answer included); integers, decimals and
  fractions are compared exactly without sympy, a decimal comma read beside a decimal point.
  Tuples, sets, intervals, unions and one-variable inequalities of such numbers are compared
  exactly too, by the rules below (rewards.math.structures): no ANTLR parse, no sympy.
- Relations as sets (rewards.math.sets): `x \\in S`, inequalities and their and/or forms are
  compared with intervals and unions as sets, in both directions, without Math-Verify's
  `allow_set_relation_comp` (which also loses "or": its normaliser turns it into a comma).
- Precision shown. A decimal with 4 significant digits is compared at the places it shows
  (`0.3333` = `1/3`); otherwise at `float_rounding` places, as in Math-Verify.
- Choice letters. A gold that is a single letter A-E is a multiple-choice key;
  the answer's letter is read from `B`, `(B)`, `\\text{(B)}` or, in a sentence,
  by Math-Verify's StringExtractionConfig, and compared case-insensitively.
- Tiny values. For exact (float-free) numbers, `verify` ends in
  `(a - b).evalf(chop=True) == 0`, which chops anything below ~1e-15 to zero, so
  1/2004! equals 1/2006!. A `verify` match of exact numbers is re-checked with a
  relative tolerance on a 30-digit evaluation, without chopping.

Every function returns plain strings and bools, and a verdict's detail quotes the texts: no
sympy object is printed on the hot path. `CompareOptions.plain` is the audit: plain Math-Verify.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify
from sympy import Basic, Expr, Float, Interval, MatrixBase, Tuple
from sympy import FiniteSet as SympyFiniteSet

from rewards.math.numbers import exact_numbers_equal, plain_decimal, shown_rounding, squeeze
from rewards.math.protocol import CORRECT, GOLD_UNPARSABLE, INCORRECT, CompareOptions
from rewards.math.reading import is_hedged, read, rewrite_constants, text_answer_matches, unlabel
from rewards.math.sets import relation_sets, sets_equal, stated_as_set
from rewards.math.structures import exact_structures_equal

# Math-Verify warns once per process that its timeouts are off; the pool, or the host that runs
# the verifier inline, enforces them.
logging.getLogger("math_verify").setLevel(logging.ERROR)

EXTRACTION_TARGETS = {
    "latex": LatexExtractionConfig(),
    "latex_default": LatexExtractionConfig(),
    "latex_boxed0": LatexExtractionConfig(boxed_match_priority=0),
    "expr": ExprExtractionConfig(),
}
_ANSWER_TARGETS = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
_CHOICES = "ABCDE"
_CHOICE_TARGETS = (StringExtractionConfig(strings=tuple(_CHOICES)),)


@dataclass(frozen=True)
class Judgement:
    outcome: str
    gold: str
    answer: str


def judge(gold_text: str, answer_text: str, options: CompareOptions) -> Judgement:
    """Compare one gold text with one answer text."""
    if options.plain:
        # Bare LaTeX is boxed first, or Math-Verify's extraction (which looks for $…$ or \boxed{}) finds nothing
        gold = parse(as_latex_input(gold_text), parsing_timeout=None)
        answer = parse(as_latex_input(answer_text), parsing_timeout=None)
        outcome = CORRECT if verify(gold, answer, timeout_seconds=None) else INCORRECT
        return Judgement(outcome, gold_text[:120], answer_text[:120])
    if options.targets is not None:
        return _judge_parsed(rewrite_constants(gold_text), rewrite_constants(answer_text), options)
    gold, answer = read(gold_text, gold=True), read(answer_text)
    if squeeze(gold.text) == squeeze(answer.text):
        return Judgement(CORRECT, gold.text[:120], answer.text[:120])  # equal strings are always equal
    gold_choice = _choice_letter(gold.text)
    if gold_choice is not None:
        answer_choice = _answer_choice(answer.text)
        outcome = CORRECT if answer_choice == gold_choice else INCORRECT
        return Judgement(outcome, f"choice {gold_choice}", f"choice {answer_choice or '(none)'}")
    if not answer.prose and is_hedged(answer.text) and not is_hedged(gold.text):
        return Judgement(INCORRECT, gold.text[:120], f"several candidates: {answer.text[:100]}")
    exact = exact_numbers_equal(gold.text, answer.text)
    if exact is not None:
        return Judgement(CORRECT if exact else INCORRECT, gold.text[:120], answer.text[:120])
    words = text_answer_matches(gold.text, answer.text)
    if words is not None:
        return Judgement(CORRECT if words else INCORRECT, gold.text[:120], answer.text[:120])
    gold_math, answer_math = unlabel(_unwrap_math(gold.text), _unwrap_math(answer.text))
    if not (gold.prose or answer.prose):  # a sentence's colons and commas are not a ratio or a list
        for splitter, compare in ((_ratio_terms, _proportional), (_ellipsis_terms, _termwise)):
            gold_terms, answer_terms = splitter(gold_math), splitter(answer_math)
            if gold_terms is not None or answer_terms is not None:
                return _judge_terms(gold_math, gold_terms, answer_terms, compare, options)
        exact = exact_structures_equal(gold_math, answer_math)
        if exact is not None:
            return Judgement(CORRECT if exact else INCORRECT, gold_math[:120], answer_math[:120])
    options = dataclasses.replace(options, float_rounding=shown_rounding(answer.text, options.float_rounding))
    return _judge_parsed(gold_math, answer_math, options, gold.prose, answer.prose)


def _judge_parsed(
    gold_text: str, answer_text: str, options: CompareOptions, gold_prose: bool = False, answer_prose: bool = False
) -> Judgement:
    gold = _parse(gold_text, options, gold_prose)
    if not _has_math(gold):
        return Judgement(GOLD_UNPARSABLE, gold_text[:120], "")
    answer = _parse(answer_text, options, answer_prose)
    if options.targets is None:
        def part(text: str) -> list[Any]:
            return _parse(text, options)

        gold_set = relation_sets(gold, gold_text, part)
        answer_set = relation_sets(answer, answer_text, part) if gold_set is not None else None
        # Two sets as written are Math-Verify's to compare (it rounds decimal endpoints); a relation is ours
        as_written = stated_as_set(gold) and stated_as_set(answer)
        if gold_set is not None and answer_set is not None and not as_written:
            outcome = CORRECT if sets_equal(gold_set, answer_set) else INCORRECT
            return Judgement(outcome, gold_text[:120], answer_text[:120])
    # The texts say it as well as their parsed forms would; printing sympy objects costs ~0.15 ms.
    outcome = CORRECT if equivalent(gold, answer, options) else INCORRECT
    return Judgement(outcome, gold_text[:120], answer_text[:120])


def equivalent(gold: list[Any], answer: list[Any], options: CompareOptions) -> bool:
    """Math-Verify's verdict, minus the tiny-value matches its chopped evaluation lets through."""
    gold_math = [g for g in gold if isinstance(g, Basic | MatrixBase)]
    answer_math = [a for a in answer if isinstance(a, Basic | MatrixBase)]
    # Two exact numbers whose 30-digit values differ are different, whatever `verify` says; checked
    # first, that also spares `verify` its numeric check and then sympy's simplify (10-200 ms) on
    # them. Structurally identical ones are equal: nothing a closer evaluation could tell apart.
    if gold_math and answer_math and gold_math[0] != answer_math[0]:
        if _exact_values_differ(gold_math[0], answer_math[0], options.exact_rel_tol):
            return False
    return verify(
        gold,
        answer,
        float_rounding=options.float_rounding,
        numeric_precision=options.numeric_precision,
        strict=options.strict,
        allow_set_relation_comp=options.allow_set_relation_comp,
        timeout_seconds=None,
    )


_MARKUP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|textrm)\s*\{(.*)\}$", re.DOTALL)
_CHOICE = re.compile(rf"^\(?\s*([{_CHOICES}])\s*\)?$")


def _choice_letter(text: str) -> str | None:
    """The letter of an answer that is only a choice key: B, (B), \\text{(B)}, $\\textbf{B}$."""
    text = _unwrap_math(text)
    while (markup := _MARKUP.match(text)) is not None:
        text = markup.group(1).strip()
    choice = _CHOICE.match(text)
    return choice.group(1) if choice else None


def _answer_choice(text: str) -> str | None:
    letter = _choice_letter(text) or _choice_letter(text.upper())
    if letter is not None:
        return letter
    found = parse(
        re.sub(r"\(([A-E])\)", r"\1", text), _CHOICE_TARGETS, extraction_mode="first_match", parsing_timeout=None
    )
    return found[-1].upper() if found else None


_DELIMITER = re.compile(r"\\boxed|(?<!\\)\$|\\\(|\\\[")


def as_latex_input(answer: str) -> str:
    """An extracted answer as Math-Verify input: bare LaTeX is boxed, delimited LaTeX kept."""
    if _DELIMITER.search(answer):
        return answer
    return "\\boxed{" + answer + "}"


def _parse(text: str, options: CompareOptions, prose: bool = False) -> list[Any]:
    if options.targets is None:
        number = plain_decimal(text)
        if number is not None:  # what latex2sympy would build, without its ANTLR parse (1-70 ms)
            return [sympy.Float(number, 15) if "." in number else sympy.Integer(number), text]
        # A sentence or a worked solution is searched Math-Verify's way, its final expression first
        # (last-match); first_match mode keeps a failed parse a failure instead of scraping a number.
        source = text if prose else as_latex_input(text)
        return parse(source, _ANSWER_TARGETS, extraction_mode="first_match", parsing_timeout=None)
    targets = [EXTRACTION_TARGETS[name] for name in options.targets]
    return parse(text, targets, parsing_timeout=None)


def _has_math(parsed: list[Any]) -> bool:
    return any(isinstance(p, Basic | MatrixBase) for p in parsed)


# --- exact-number re-check ---------------------------------------------------------


def _exact_values_differ(gold: Any, answer: Any, rel_tol: float) -> bool:
    """True when two float-free numbers (or same-shaped containers of them) differ relatively."""
    if isinstance(gold, MatrixBase) and isinstance(answer, MatrixBase):
        if gold.shape != answer.shape:
            return False
        return any(_exact_values_differ(g, a, rel_tol) for g, a in zip(gold, answer, strict=True))
    if isinstance(gold, Interval) and isinstance(answer, Interval):
        return _exact_values_differ(gold.start, answer.start, rel_tol) or _exact_values_differ(
            gold.end, answer.end, rel_tol
        )
    if isinstance(gold, Tuple) and isinstance(answer, Tuple) and len(gold) == len(answer):
        return any(_exact_values_differ(g, a, rel_tol) for g, a in zip(gold, answer, strict=True))
    if isinstance(gold, SympyFiniteSet) and isinstance(answer, SympyFiniteSet) and len(gold) == len(answer):
        gold_values, answer_values = _sorted_values(gold.args), _sorted_values(answer.args)
        if gold_values is None or answer_values is None:
            return False
        return any(_relative_gap(g, a) > rel_tol for g, a in zip(gold_values, answer_values, strict=True))
    gold_readings, answer_readings = _exact_readings(gold), _exact_readings(answer)
    if not gold_readings or not answer_readings:
        return False
    return all(_relative_gap(g, a) > rel_tol for g in gold_readings for a in answer_readings)


def _exact_readings(expr: Any) -> list[sympy.Number]:
    """30-digit values of a float-free constant: the value and, for `p\\%`, also p itself."""
    if not isinstance(expr, Expr) or expr.has(Float) or not expr.is_number:
        return []
    readings = []
    percent = _percent_base(expr)
    for candidate in (expr, percent):
        if candidate is None:
            continue
        value = sympy.N(candidate.doit(), 30)
        if value.is_number and value.is_finite and not value.has(sympy.nan):
            readings.append(value)
    return readings


def _percent_base(expr: Expr) -> Expr | None:
    # latex2sympy2 writes p% as Mul(p, UnevaluatedExpr(1/100)); Math-Verify accepts
    # either reading (28% == 28 == 0.28), so the re-check must allow both too.
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2:
        if expr.args[1] == sympy.UnevaluatedExpr(sympy.Rational(1, 100)):
            return expr.args[0]
    return None


def _sorted_values(args: tuple[Any, ...]) -> list[sympy.Number] | None:
    values = []
    for arg in args:
        readings = _exact_readings(arg)
        if len(readings) != 1 or not readings[0].is_real:
            return None
        values.append(readings[0])
    return sorted(values)


def _relative_gap(a: sympy.Number, b: sympy.Number) -> float:
    scale = max(abs(a), abs(b))
    if scale == 0:
        return 0.0
    return float(abs(a - b) / scale)


# --- ratios and lists with an ellipsis ---------------------------------------------------

_ELLIPSIS = re.compile(r"^(?:\\[lc]?dots[bc]?|\.\.\.|…)$")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = set(_OPENERS.values())
_DELIMITED = re.compile(r"^\s*(?:\$\$?|\\\(|\\\[)(.*?)(?:\$\$?|\\\)|\\\])\s*\.?\s*$", re.DOTALL)


def _unwrap_math(text: str) -> str:
    match = _DELIMITED.match(text)
    return (match.group(1) if match else text).strip()


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split at `separator` outside any (), [], {} or \\{ \\} nesting."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped and escaped in "{}":
                depth += 1 if escaped == "{" else -1
                i += 2
                continue
        elif ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return parts


def _stays_open(inner: str) -> bool:
    """True when `inner` never closes more than it opened: its enclosure wraps it whole."""
    depth = 0
    for ch in inner:
        depth += 1 if ch in _OPENERS else -1 if ch in _CLOSERS else 0
        if depth < 0:
            return False
    return depth == 0


def _ratio_terms(text: str) -> list[str] | None:
    """Terms of a ratio of three or more terms; a two-term ratio a:b is left to mean a/b."""
    parts = _split_top_level(text, ":")
    if len(parts) < 3 or not all(parts):
        return None
    return parts


def _strip_enclosure(text: str) -> str:
    for opener, closer in (("\\{", "\\}"), ("(", ")"), ("[", "]"), ("\\left(", "\\right)")):
        if text.startswith(opener) and text.endswith(closer):
            inner = text[len(opener) : -len(closer)]
            if _stays_open(inner):
                return inner
    return text


def _ellipsis_terms(text: str) -> list[str] | None:
    parts = _split_top_level(_strip_enclosure(text), ",")
    if len(parts) < 2 or not any(_ELLIPSIS.match(p) for p in parts):
        return None
    return parts


def _judge_terms(gold_text: str, gold_terms, answer_terms, compare, options: CompareOptions) -> Judgement:
    shown_answer = ", ".join(answer_terms or ())[:120]
    if gold_terms is None:
        outcome = INCORRECT if _has_math(_parse(gold_text, options)) else GOLD_UNPARSABLE
        return Judgement(outcome, gold_text[:120], shown_answer)
    gold_values = [_term_value(t, options) for t in gold_terms]
    if any(v is None for v in gold_values):
        return Judgement(GOLD_UNPARSABLE, gold_text[:120], "")
    if answer_terms is None or len(answer_terms) != len(gold_terms):
        return Judgement(INCORRECT, gold_text[:120], shown_answer)
    answer_values = [_term_value(t, options) for t in answer_terms]
    if any(v is None for v in answer_values):
        return Judgement(INCORRECT, gold_text[:120], shown_answer)
    outcome = CORRECT if compare(gold_values, answer_values, options) else INCORRECT
    return Judgement(outcome, gold_text[:120], shown_answer)


_ELLIPSIS_TERM: list[Any] = []  # an empty parse stands for an ellipsis: a real term never parses to nothing


def _term_value(term: str, options: CompareOptions) -> list[Any] | None:
    if _ELLIPSIS.match(term):
        return _ELLIPSIS_TERM
    parsed = _parse(term, options)
    return parsed if _has_math(parsed) else None


def _termwise(gold: list[list[Any]], answer: list[list[Any]], options: CompareOptions) -> bool:
    for g, a in zip(gold, answer, strict=True):
        if (g is _ELLIPSIS_TERM) != (a is _ELLIPSIS_TERM):
            return False
        if g is not _ELLIPSIS_TERM and not equivalent(g, a, options):
            return False
    return True


def _proportional(gold: list[list[Any]], answer: list[list[Any]], options: CompareOptions) -> bool:
    """a:b:c equals d:e:f when every cross product agrees: a*e == b*d, a*f == c*d, ..."""
    g = [_first_math(v) for v in gold]
    a = [_first_math(v) for v in answer]
    if any(v is None for v in g + a):
        return False
    return all(equivalent([g[i] * a[j]], [g[j] * a[i]], options) for i in range(len(g)) for j in range(i + 1, len(g)))


def _first_math(parsed: list[Any]) -> Any:
    return next((p for p in parsed if isinstance(p, Expr)), None)
