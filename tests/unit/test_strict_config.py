"""arbiter.config: the one strict mapping -> frozen dataclass loader every config uses, and its one
validation hook."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from arbiter.config import ConfigError, check, from_dict


class Policy(enum.Enum):
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 1.0
    workers: int = 2


@dataclass(frozen=True)
class Remote:
    address: str
    verifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Root:
    name: str = "x"
    enabled: bool = True
    limits: Limits = field(default_factory=Limits)
    remote: Remote | None = None
    memory_mib: int | None = 2048
    port: int | str = 0
    mode: Literal["fast", "slow"] = "fast"
    policy: Policy = Policy.RETRY
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    remotes: dict[str, Remote] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Checked:
    n: int = 0

    def validate(self) -> None:
        if self.n < 0:
            raise ConfigError("n: must be >= 0")


@dataclass(frozen=True)
class Outer:
    inner: Checked = field(default_factory=Checked)


@dataclass(frozen=True)
class Odd:
    n: int = 1

    def __post_init__(self) -> None:
        if self.n % 2 == 0:
            raise ValueError("n: must be odd")


@dataclass(frozen=True)
class Guarded:
    inner: Odd = field(default_factory=Odd)


@dataclass(frozen=True)
class FixedPair:
    pair: tuple[int, int] = (0, 0)


def error_of(raw: object, cls: type = Root) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(cls, raw)
    return str(info.value)


def test_nested_yaml_builds_nested_frozen_dataclasses() -> None:
    raw = yaml.safe_load("""
        limits: {timeout_s: 3, workers: 4}
        remote: {address: "h:1", verifiers: [judge]}
        mode: slow
        policy: fail
        weights: {math: {math: 1, format: 0.5}}
        remotes: {a: {address: "h:2"}}
        tags: [a, b]
        paths: [p]
    """)
    config = from_dict(Root, raw)
    assert config.limits == Limits(timeout_s=3.0, workers=4)
    assert config.remote == Remote("h:1", ("judge",))
    assert config.mode == "slow" and config.policy is Policy.FAIL
    assert config.weights == {"math": {"math": 1.0, "format": 0.5}}
    assert config.remotes == {"a": Remote("h:2")}
    assert config.tags == ("a", "b") and config.paths == ["p"]


def test_omitted_keys_keep_their_defaults() -> None:
    assert from_dict(Root, {}) == Root()


def test_null_section_means_all_defaults() -> None:
    assert from_dict(Root, yaml.safe_load("limits:\n")) == Root()
    assert from_dict(Root, None) == Root()


def test_unknown_key_names_its_dotted_path_and_the_known_keys() -> None:
    message = error_of({"limits": {"timout_s": 1}})
    assert message == "limits.timout_s: unknown key (known: timeout_s, workers)"


def test_missing_required_key_names_its_path() -> None:
    assert error_of({"remotes": {"a": {"verifiers": ["j"]}}}) == "remotes.a.address: missing required key"


def test_wrong_type_names_the_path_the_type_and_the_value() -> None:
    assert error_of({"limits": {"workers": "4"}}) == "limits.workers: expected int, got str '4'"
    assert error_of({"tags": "a"}).startswith("tags: expected a list, got str")
    assert error_of({"limits": []}).startswith("limits: expected a mapping, got list")


def test_bool_is_not_a_number() -> None:
    assert error_of({"limits": {"workers": True}}).startswith("limits.workers: expected int, got bool")
    assert error_of({"limits": {"timeout_s": False}}).startswith("limits.timeout_s: expected a number, got bool")


def test_int_is_accepted_and_converted_where_a_float_is_expected() -> None:
    value = from_dict(Root, {"limits": {"timeout_s": 2}}).limits.timeout_s
    assert value == 2.0 and isinstance(value, float)


def test_yaml_exponent_without_a_dot_gets_a_hint() -> None:
    raw = yaml.safe_load("limits: {timeout_s: 3e-3}")  # YAML 1.1 reads this as the string '3e-3'
    assert "write 3.0e-3" in error_of(raw)


def test_optional_field_takes_null_or_its_type() -> None:
    assert from_dict(Root, {"memory_mib": None}).memory_mib is None
    assert error_of({"memory_mib": "big"}) == "memory_mib: expected int, got str 'big'"


def test_union_takes_the_first_option_that_fits() -> None:
    assert from_dict(Root, {"port": 7}).port == 7
    assert from_dict(Root, {"port": "auto"}).port == "auto"
    assert error_of({"port": 1.5}).startswith("port: 1.5 matches none of")


def test_literal_and_enum_accept_only_their_choices() -> None:
    assert error_of({"mode": "medium"}) == "mode: expected one of 'fast', 'slow', got 'medium'"
    assert error_of({"policy": "ignore"}) == "policy: expected one of 'retry', 'fail', got 'ignore'"


def test_mapping_values_are_typed_with_their_key_in_the_path() -> None:
    assert error_of({"weights": {"math": {"format": "high"}}}).startswith("weights.math.format: expected a number")
    assert error_of({"remotes": {"a": {"address": 5}}}).startswith("remotes.a.address: expected str")


def test_top_level_must_be_a_mapping() -> None:
    assert error_of([1, 2]) == "<root>: expected a mapping, got list"


def test_validate_runs_at_every_level_and_its_error_names_the_key_path() -> None:
    assert error_of({"inner": {"n": -1}}, Outer) == "inner.n: must be >= 0"
    assert error_of({"n": -1}, Checked) == "n: must be >= 0"


def test_check_validates_a_config_built_in_code_naming_the_key_path() -> None:
    assert check(Outer()) == Outer()
    with pytest.raises(ConfigError, match=r"^inner\.n: must be >= 0$"):
        check(Outer(inner=Checked(n=-1)))


def test_a_constructor_error_names_the_key_path() -> None:
    assert error_of({"inner": {"n": 2}}, Guarded) == "inner.n: must be odd"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_unsupported_field_type_is_reported_not_passed_through() -> None:
    assert error_of({"pair": [1, 2]}, FixedPair).startswith("pair: unsupported field type")
