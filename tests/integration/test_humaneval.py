"""All 164 HumanEval problems through the `code` verifier and the real sandbox.

Each canonical solution must score 1.0, and two broken variants of each must score 0.0: the body
replaced by `return None`, and a wrong-answer mutant that returns the canonical result changed
by one (n + 1, not b, s + "x", xs + [0], ...). Graded two at a time, as the warm pool allows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rewards.code import CodeVerifier
from rewards.types import Sample, Verdict
from sandbox.grading.humaneval import HumanEvalProblem, load_humaneval

pytestmark = pytest.mark.slow

PROBLEMS = load_humaneval()
OFF_BY_ONE = '''
_reference = {entry}


def _off_by_one(result):
    if type(result) is bool:
        return not result
    if type(result) in (int, float):
        return result + 1
    if type(result) is str:
        return result + "x"
    if type(result) in (list, tuple):
        return result + type(result)([0])
    return 0 if result is None else None


def {entry}(*args, **kwargs):
    return _off_by_one(_reference(*args, **kwargs))
'''


def _score_all(programs: list[tuple[HumanEvalProblem, str]]) -> dict[str, tuple[Verdict, float | None, str]]:
    verifier = CodeVerifier()

    def score(item: tuple[HumanEvalProblem, str]) -> tuple[Verdict, float | None, str]:
        problem, code = item
        sample = Sample(id=problem.task_id, task="code", completion=f"```python\n{code}\n```",
                        tests=problem.tests_field())
        result = verifier.score(sample)
        return result.verdict, result.score, result.detail

    with ThreadPoolExecutor(max_workers=2) as pool:
        return {problem.task_id: outcome for (problem, _), outcome in zip(programs, pool.map(score, programs),
                                                                          strict=True)}


def test_loader_reads_all_164_problems():
    assert len(PROBLEMS) == 164 and PROBLEMS[0].task_id == "HumanEval/0" and PROBLEMS[-1].task_id == "HumanEval/163"


def test_every_canonical_solution_passes():
    outcomes = _score_all([(p, p.solution()) for p in PROBLEMS])
    failures = {task: detail for task, (verdict, score, detail) in outcomes.items()
                if verdict is not Verdict.CORRECT or score != 1.0}
    assert not failures


def test_every_broken_variant_fails():
    variants = [(p, p.prompt + "    return None\n") for p in PROBLEMS]
    variants += [(p, p.solution() + OFF_BY_ONE.format(entry=p.entry_point)) for p in PROBLEMS]
    outcomes = _score_all(variants[:164]) | {f"{k} (off by one)": v for k, v in _score_all(variants[164:]).items()}
    survivors = {task: detail for task, (verdict, score, detail) in outcomes.items()
                 if verdict is not Verdict.INCORRECT or score != 0.0}
    assert len(outcomes) == 2 * 164 and not survivors
