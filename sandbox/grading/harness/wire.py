"""Strict value codec between the referee and the contestant: builtin types only, one JSON line each.

This file runs inside the sandbox on both sides (as the module ``arbiter_wire``) and on the
host in tests, so it uses the standard library only. The referee decodes what the contestant
sends with `loads`, which can build nothing but fresh None/bool/int/float/complex/str/bytes/
list/tuple/dict/set/frozenset/range values and list iterators: an object with a rigged ``__eq__`` or an ``int`` subclass
cannot cross, whatever the contestant does to its own copy of this module. A range crosses as
a range and an iterator (generator, map, ...) as a list iterator over its items.
"""

import json
import types

MAX_LINE_BYTES = 64 << 20
_TAGS = ("$t", "$d", "$s", "$f", "$b", "$c", "$r", "$i")
# Lazy results an honest solution may return (`return map(f, xs)` for a test that does
# `list(candidate(xs))`): they cross as a builtin list iterator over the same items.
_ITERATORS = (
    types.GeneratorType, map, filter, zip, enumerate, reversed,
    type(iter([])), type(iter(())), type(iter("")), type(iter(range(0))), type(iter({})),
)


class WireError(ValueError):
    pass


def encode(value):
    """A JSON-able form of `value`; exact builtin types only (subclasses are refused)."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if kind is list:
        return [encode(v) for v in value]
    if kind is tuple:
        return {"$t": [encode(v) for v in value]}
    if kind is dict:
        return {"$d": [[encode(k), encode(v)] for k, v in value.items()]}
    if kind is set:
        return {"$s": [encode(v) for v in value]}
    if kind is frozenset:
        return {"$f": [encode(v) for v in value]}
    if kind is bytes:
        return {"$b": value.hex()}
    if kind is complex:
        return {"$c": [value.real, value.imag]}
    if kind is range:
        return {"$r": [value.start, value.stop, value.step]}
    if kind in _ITERATORS:
        return {"$i": [encode(v) for v in value]}
    raise WireError(f"cannot send a value of type {kind.__module__}.{kind.__qualname__}")


def _hook(obj):
    if len(obj) != 1:
        raise WireError("malformed tagged value")
    (tag, body), = obj.items()
    if tag not in _TAGS:
        raise WireError(f"unknown tag {tag!r}")
    if tag == "$b":
        if type(body) is not str:
            raise WireError("malformed bytes")
        return bytes.fromhex(body)
    if type(body) is not list:
        raise WireError(f"malformed {tag} body")
    if tag == "$t":
        return tuple(body)
    if tag == "$s":
        return set(body)
    if tag == "$f":
        return frozenset(body)
    if tag == "$c":
        if len(body) != 2 or any(type(x) not in (int, float) for x in body):
            raise WireError("malformed complex")
        return complex(body[0], body[1])
    if tag == "$r":
        if len(body) != 3 or any(type(x) is not int for x in body):
            raise WireError("malformed range")
        return range(*body)
    if tag == "$i":
        return iter(body)
    pairs = []
    for pair in body:
        if type(pair) is not list or len(pair) != 2:
            raise WireError("malformed dict item")
        pairs.append(pair)
    return dict(pairs)


def dumps(message):
    """One protocol line (bytes, newline-terminated) for a JSON array message."""
    return (json.dumps(message, allow_nan=True, separators=(",", ":")) + "\n").encode()


def loads(line):
    """Decode one protocol line into a list; any malformed input raises WireError."""
    try:
        message = json.loads(line, object_hook=_hook)
    except WireError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise WireError(f"undecodable message: {type(exc).__name__}") from None
    if type(message) is not list or not message or type(message[0]) is not str:
        raise WireError("a message is a non-empty array starting with its kind")
    return message
