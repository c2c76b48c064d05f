"""The code verifier's input side: which code block it grades, and how it rejects bad samples."""

from __future__ import annotations

import pickle

import pytest

from rewards.code import CodeConfig, CodeVerifier, extract_final_code_block, parse_limits, parse_tests
from rewards.types import Sample, SampleError, Verdict
from sandbox.grading import FunctionTestSpec

HUMANEVAL_TEST = "def check(candidate):\n    assert candidate(1) == 2\n"


def test_final_block_is_graded():
    text = "first\n```python\nx = 1\n```\nthen\n```python\nx = 2\n```\n"
    block = extract_final_code_block(text)
    assert block is not None and block.code == "x = 2\n" and block.tag == "python"


def test_trailing_output_block_is_passed_over_for_the_last_code_block():
    text = "```cpp\nint main(){}\n```\nOutput:\n```text\n42\n```\n"
    block = extract_final_code_block(text)
    assert block is not None and block.tag == "cpp"


def test_untagged_block_counts_as_code():
    block = extract_final_code_block("```\nprint(1)\n```")
    assert block is not None and block.tag == "" and block.code == "print(1)\n"


def test_unclosed_block_is_not_an_answer():
    assert extract_final_code_block("```python\ndef f():\n    return 1\n") is None


def test_block_inside_think_only_is_not_an_answer():
    assert extract_final_code_block("<think>```python\nx=1\n```</think>\nno code here") is None


def test_block_after_think_is_found():
    block = extract_final_code_block("<think>\n```python\nx=1\n```\n</think>\n```py\nx=2\n```")
    assert block is not None and block.code == "x=2\n"


def test_indentation_inside_the_block_is_kept():
    block = extract_final_code_block("```python\ndef f():\n    return 1\n```")
    assert block is not None and block.code == "def f():\n    return 1\n"


def test_humaneval_tests_parse_to_one_check_test():
    spec = parse_tests({"kind": "assert", "entry_point": "f", "test": HUMANEVAL_TEST})
    assert isinstance(spec, FunctionTestSpec)
    assert spec.tests == ("check(candidate)",) and spec.entry_point == "f"


def test_mbpp_lines_parse_to_one_test_each():
    spec = parse_tests({"kind": "assert", "test": ["assert f(1) == 2", "assert f(2) == 3"]})
    assert isinstance(spec, FunctionTestSpec) and len(spec.tests) == 2


@pytest.mark.parametrize(
    ("tests", "field"),
    [
        (None, "tests"),
        ({"kind": "unit"}, "tests.kind"),
        ({"kind": "assert", "test": HUMANEVAL_TEST}, "tests.entry_point"),
        ({"kind": "assert", "entry_point": "f", "test": "assert f(1) == 2"}, "tests.test"),
        ({"kind": "assert", "entry_point": "f", "test": "def check(c):\n  assert c(1) ==\n"}, "tests.test"),
        ({"kind": "assert", "test": []}, "tests.test"),
        ({"kind": "assert", "test": ["assert f(1) =="]}, "tests.test"),
        ({"kind": "assert", "entry_point": "not valid", "test": ["assert 1"]}, "tests.entry_point"),
        ({"kind": "assert", "test": ["assert 1"], "colour": 1}, "tests.colour"),
        ({"kind": "stdio"}, "tests.cases"),
        ({"kind": "stdio", "cases": []}, "tests.cases"),
        ({"kind": "stdio", "cases": [{"stdin": ""}]}, "tests.cases[0].stdout"),
        ({"kind": "stdio", "cases": [{"stdin": 1, "stdout": ""}]}, "tests.cases[0].stdin"),
        ({"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}], "float_tolerance": "1e-6"},
         "tests.float_tolerance"),
        ({"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}], "float_tolerance": -1.0},
         "tests.float_tolerance"),
        ({"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}], "checker": {"language": "cobol", "source": ""}},
         "tests.checker.language"),
    ],
)
def test_malformed_tests_name_the_field(tests, field):
    with pytest.raises(SampleError) as info:
        parse_tests(tests)
    assert info.value.field == field


def test_float_tolerance_accepts_a_number_or_abs_rel():
    assert parse_tests({"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}],
                        "float_tolerance": {"rel": 1e-9}}).tolerance.rel_tol == 1e-9
    assert parse_tests({"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}],
                        "float_tolerance": 1e-6}).tolerance.abs_tol == 1e-6


@pytest.mark.parametrize(("limits", "field"), [({"time_s": 0}, "limits.time_s"), ({"time_s": "1"}, "limits.time_s"),
                                               ({"memory_mib": 1.5}, "limits.memory_mib"), ({"cpu": 1}, "limits.cpu")])
def test_malformed_limits_name_the_field(limits, field):
    with pytest.raises(SampleError) as info:
        parse_limits(limits, CodeConfig())
    assert info.value.field == field


def test_sample_limits_override_the_config():
    assert parse_limits({"time_s": 2, "memory_mib": 256}, CodeConfig()) == (2.0, 256)
    assert parse_limits(None, CodeConfig(time_s=3.0)) == (3.0, 512)


def _sample(completion: str, **extra) -> Sample:
    return Sample(id="s", task="code", completion=completion,
                  tests=extra.pop("tests", {"kind": "assert", "test": ["assert f(1) == 2"]}), **extra)


def test_no_code_block_is_no_answer():
    result = CodeVerifier().score(_sample("def f(x): return x + 1"))
    assert result.verdict is Verdict.NO_ANSWER and result.score == 0.0


def test_bad_tests_raise_sample_error_even_without_an_answer():
    with pytest.raises(SampleError) as info:
        CodeVerifier().score(_sample("no code", tests={"kind": "nope"}))
    assert info.value.field == "tests.kind"


def test_assert_tests_with_cpp_language_is_a_sample_error():
    with pytest.raises(SampleError) as info:
        CodeVerifier().score(_sample("```cpp\nint main(){}\n```", language="cpp"))
    assert info.value.field == "language"


def test_unknown_sample_language_is_a_sample_error():
    with pytest.raises(SampleError) as info:
        CodeVerifier().score(_sample("```\nx\n```", language="cobol",
                                     tests={"kind": "stdio", "cases": [{"stdin": "", "stdout": ""}]}))
    assert info.value.field == "language"


def test_block_in_unsupported_language_is_incorrect():
    result = CodeVerifier().score(_sample("```java\nclass A {}\n```"))
    assert result.verdict is Verdict.INCORRECT and result.score == 0.0


def test_verifier_pickles_without_a_sandbox():
    verifier = CodeVerifier(CodeConfig(binary=True))
    clone = pickle.loads(pickle.dumps(verifier))
    assert clone.config == verifier.config and clone.name == "code" and clone.reference == "tests"


@pytest.mark.parametrize("kwargs", [{"time_s": 0}, {"time_s": 61}, {"memory_mib": 8}, {"memory_mib": 1.5}])
def test_config_rejects_out_of_range_limits(kwargs):
    with pytest.raises(ValueError):
        CodeConfig(**kwargs)


def test_completions_with_the_same_program_share_a_cache_key():
    from rewards.code import CodeVerifier
    from rewards.types import Sample

    def sample(completion: str) -> Sample:
        return Sample(id="1", task="code", completion=completion, tests={"kind": "assert", "test": ["assert f()"]})

    verifier = CodeVerifier()
    first = verifier.cache_key(sample("<think>a</think>Here:\n```python\ndef f():  \n    return 1\n```"))
    second = verifier.cache_key(sample("<think>b</think>So\n```python\ndef f():\n    return 1\n```\ndone"))
    other = verifier.cache_key(sample("```python\ndef f():\n    return 2\n```"))
    assert first == second != other
    assert verifier.cache_key(sample("no code")) is None
