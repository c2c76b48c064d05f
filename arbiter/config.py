"""Strict loading of decoded YAML/JSON mappings into (frozen) config dataclasses.

One loader for every config in Arbiter (services, cluster, trainer, verifiers): an
unknown key, a missing required key or a wrong type is a `ConfigError` whose message
starts with the dotted path of the offender (``grpo.group_size: expected int, got str
'8'``), so a typo fails at start-up instead of silently running with a default.

One validation hook: a config class may define ``validate(self) -> None`` that raises
ConfigError (or ValueError) with a message starting with its own field's name
(``"port: must be in 0..65535"``); it checks that object's own fields and how they relate,
never its nested configs'. The loader calls it on every dataclass it builds, innermost
first, and prefixes the key path (``serve.port: must be in 0..65535``); `check(config)`
does the same walk for a config built in code. A ValueError from a constructor
(``__post_init__``) is reported the same way.

Field types understood: nested dataclasses, ``X | None`` and other unions, ``Literal``,
enums (built from their value), ``dict[K, V]``, ``tuple[X, ...]``, ``list[X]``, ``int``,
``float`` (an int is accepted and converted; ``bool`` never counts as a number), ``str``,
``bool``. A ``null`` section means "all defaults", as an empty YAML section reads.
Stdlib only, and outside rewards/ (which stays pure scoring: its configs raise ValueError from
`__post_init__` or `validate()`, and the loader names the key path): services, trainer and the
CLI import it.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")

_YAML_FLOAT_HINT = " (YAML reads 3e-3 as a string; write 3.0e-3)"


class ConfigError(ValueError):
    """A config value is wrong; the message starts with the dotted path of the offending key."""


def from_dict(cls: type[T], raw: Any, path: str = "") -> T:
    """Build dataclass `cls` from a decoded mapping, strictly, validating every level on the way.

    `path` is the dotted prefix for error messages (empty at the top level, which errors call
    ``<root>``).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{_join(path, unknown[0])}: unknown key (known: {', '.join(sorted(fields))})")
    missing = [
        name for name, f in fields.items()
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(path, missing[0])}: missing required key")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, _join(path, name)) for name, value in raw.items()}
    return _validated(path, lambda: cls(**values))


def check(config: T, path: str = "") -> T:
    """Run `validate()` on `config` and every config nested in it (a config built in code, not
    loaded); the error names the key path. Returns `config`."""
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            _check_value(getattr(config, f.name), _join(path, f.name))
        _validated(path, lambda: config)
    return config


def _check_value(value: Any, path: str) -> None:
    if dataclasses.is_dataclass(value):
        check(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, _join(path, key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, path)


def _validated(path: str, build: Any) -> Any:
    """`build()`'s config after its `validate()`; either one's ValueError becomes a ConfigError at `path`."""
    try:
        obj = build()
        validate = getattr(obj, "validate", None)
        if validate is not None:
            validate()
    except ValueError as exc:  # ConfigError included
        raise ConfigError(f"{path}.{exc}" if path else str(exc)) from None
    return obj


def _join(path: str, name: object) -> str:
    return f"{path}.{name}" if path else str(name)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if not any(type(value) is type(choice) and value == choice for choice in args):
            raise ConfigError(f"{path}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(member.value) for member in tp)
            raise ConfigError(f"{path}: expected one of {choices}, got {value!r}") from None
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        key_tp, value_tp = args
        return {_convert(key_tp, k, f"{path}.{k}"): _convert(value_tp, v, f"{path}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise ConfigError(f"{path}: unsupported field type {tp} (use tuple[X, ...])")
        return origin(_convert(args[0], item, path) for item in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = _YAML_FLOAT_HINT if isinstance(value, str) and _looks_numeric(value) else ""
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}{hint}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {tp}")


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
