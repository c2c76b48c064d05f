"""Where the math verifier looks for the answer in an R1 completion."""

from __future__ import annotations

from rewards.math.extract import extract_answer, last_boxed


def test_answer_block_wins_over_boxed_in_reasoning() -> None:
    assert extract_answer("<think>\\boxed{4}</think><answer>5</answer>") == "5"


def test_last_boxed_inside_answer_block_is_the_answer() -> None:
    assert extract_answer("<think>x</think><answer>try \\boxed{4}, no: \\boxed{5}</answer>") == "5"


def test_answer_block_lead_in_is_dropped() -> None:
    assert extract_answer("<answer>The final answer is: 42</answer>") == "42"
    assert extract_answer("<answer>Answer: \\frac{1}{2}</answer>") == "\\frac{1}{2}"


def test_last_boxed_after_think_is_used_without_answer_block() -> None:
    assert extract_answer("<think>\\boxed{1}</think>so \\boxed{2} and finally \\boxed{3}.") == "3"


def test_reasoning_never_counts_as_the_answer() -> None:
    assert extract_answer("<think>it is \\boxed{5}</think>I am not sure.") is None


def test_unclosed_think_means_no_answer() -> None:
    assert extract_answer("<think>it is \\boxed{5} but let me check") is None


def test_completion_without_tags_uses_its_last_boxed() -> None:
    assert extract_answer("So the result is $\\boxed{\\frac{20}{2}}$.") == "\\frac{20}{2}"


def test_no_boxed_and_no_answer_block_is_no_answer() -> None:
    assert extract_answer("<think>x</think>The answer is 5.") is None
    assert extract_answer("") is None


def test_empty_answer_block_is_no_answer() -> None:
    assert extract_answer("<think>x</think><answer>  </answer>") is None


def test_unclosed_answer_block_runs_to_the_end() -> None:
    assert extract_answer("<think>x</think><answer> 7") == "7"


def test_boxed_keeps_nested_and_escaped_braces() -> None:
    assert last_boxed("\\boxed{\\{1, \\frac{1}{2}\\}}") == "\\{1, \\frac{1}{2}\\}"


def test_truncated_boxed_falls_back_to_the_previous_one() -> None:
    assert last_boxed("\\boxed{3} then \\boxed{\\frac{1}{2") == "3"


def test_fbox_counts_as_boxed() -> None:
    assert last_boxed("\\fbox{9}") == "9"


def test_answer_string_is_stable() -> None:
    completion = "<think>x</think><answer>\n  \\boxed{ 2x + 1 }\n</answer>"
    assert extract_answer(completion) == extract_answer(completion) == "2x + 1"


def test_many_unclosed_boxes_are_no_answer() -> None:
    # Scanned in one pass: extraction runs in the caller, outside any worker deadline.
    assert extract_answer("<think>x</think>" + "\\boxed{" * 50_000) is None


def test_sentence_final_period_is_dropped_from_answer_block() -> None:
    assert extract_answer("<think>x</think><answer>The answer is 5.</answer>") == "5"


def test_completions_with_the_same_extracted_answer_share_a_cache_key():
    from rewards.math import MathVerifier
    from rewards.types import Sample

    verifier = MathVerifier()
    keys = [
        verifier.cache_key(Sample(id=str(i), task="math", completion=c, answer="7"))
        for i, c in enumerate(["<think>3+4</think><answer>7</answer>", "<think>4+3=7</think><answer>7</answer>",
                               "<think>x</think><answer>8</answer>"])
    ]
    assert keys[0] == keys[1] == "7" != keys[2]


def test_a_run_of_boxes_joined_by_connectives_is_one_list() -> None:
    assert extract_answer("<answer>\\boxed{2}, \\boxed{5}</answer>") == "2, 5"
    assert extract_answer("<answer>\\boxed{x=1} \\text{ and } \\boxed{y=4}</answer>") == "x=1, y=4"
    assert extract_answer("</think>So \\boxed{(1, 2)} \\quad \\text{and} \\quad \\boxed{(2, 1)}.") == "(1, 2), (2, 1)"


def test_boxes_offered_as_alternatives_stay_a_hedge() -> None:
    assert extract_answer("<answer>\\boxed{3} or \\boxed{4}</answer>") == "3 or 4"


def test_a_box_separated_by_prose_is_not_part_of_the_list() -> None:
    assert extract_answer("<answer>\\boxed{4}, no: recounting gives \\boxed{5}</answer>") == "5"


def test_a_final_answer_stated_after_the_last_box_keeps_the_whole_block() -> None:
    block = "The CD earns $\\boxed{255}$. Final Answer: The final answer is $10,455$. I hope it is correct."
    assert extract_answer(f"<answer>{block}</answer>") == block.removesuffix(".")


def test_emphasis_lead_ins_and_wrappers_are_presentation() -> None:
    for block in ("**12**", "$\\mathbf{12}$", "Final answer: 12", "Therefore, the answer is $12$.", "__12__"):
        assert extract_answer(f"<answer>{block}</answer>") == "12", block
    assert extract_answer("<answer>$3$ and $4$</answer>") == "$3$ and $4$"  # two spans, not one wrapper
