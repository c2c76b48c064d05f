"""Programming tasks generated in code, for GRPO on code through the sandbox.

`linear_functions`: "Write f(x) returning 3x+2." for small a, b; a completion answers with one
Python function in a fenced block inside R1's tags, graded by the `code` verifier against assert
tests in the sandbox (partial credit: a right intercept with a wrong slope still passes f(0)).
The answer format is fixed and short, so a ~130k-parameter character-level model learns it in a
cold start, and what GRPO has to learn is the program itself:

    <think>3x+2</think><answer>
    ```
    def f(x): return 3*x+2
    ```
    </answer>
"""

from __future__ import annotations

import re

from trainer.data import PromptItem

# Points every test evaluates f at: f(0) checks the intercept alone, the others the slope too.
TEST_POINTS = (0, 1, -2, 7)
_LINEAR = re.compile(r"returning (\d+)x\+(\d+)")


def linear_function_prompts(slopes: range = range(2, 7), intercepts: range = range(1, 6)) -> list[PromptItem]:
    """One task per (a, b): write f(x) returning a*x + b."""
    return [
        PromptItem(
            id=f"linear-{a}-{b}", prompt=f"Write f(x) returning {a}x+{b}.", answer=f"{a}*x+{b}", task="code",
            tests={"kind": "assert", "test": [f"assert f({x}) == {a * x + b}" for x in TEST_POINTS]},
        )
        for a in slopes for b in intercepts
    ]


GENERATORS = {"linear_functions": linear_function_prompts}


def cold_start_completion(prompt: PromptItem, expression: str) -> str | None:
    """The R1-format answer to a generated code task with `expression` as f's body; None when
    `prompt` is not one of these tasks."""
    match = _LINEAR.search(prompt.prompt)
    if match is None or prompt.tests is None:
        return None
    shown = f"{match.group(1)}x+{match.group(2)}"
    return f"<think>{shown}</think><answer>\n```\ndef f(x): return {expression}\n```\n</answer>"
