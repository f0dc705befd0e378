"""Typed frontmatter values <-> canonical JSON text.

Frontmatter values travel through the CRDT as JSON strings, not as native Y
values, because pycrdt turns ints into floats and refuses dates. The JSON form
is also the canonical form for comparing values: in Python ``1 == 1.0 == True``,
but a user who changes ``1`` to ``true`` has changed the file, so every
comparison of two values goes through :func:`canonical`.

Values other than JSON's own (and those JavaScript would misread: integral
floats, ints beyond 2**53) are tagged as one-key objects whose key starts
with ``$`` (``{"$date": "2025-01-12"}``); a user mapping that happens to look
like a tag is wrapped in ``{"$map": ...}`` so decoding is never ambiguous.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

Value: TypeAlias = Any
"""None, bool, int, float, str, date, datetime, list of Value, dict[str, Value]."""

_TAGS = ("$date", "$datetime", "$float", "$int", "$map")

JS_SAFE_INT = 2**53 - 1
"""Larger ints are tagged: JavaScript readers would round them."""


class UnsupportedValue(ValueError):
    """A frontmatter value this project cannot carry (binary, sets, custom tags...)."""


def encode(value: Value) -> str:
    """Canonical JSON text for a value; equal values give equal text."""
    return dumps(_to_json(value))


def decode(text: str) -> Value:
    """Inverse of :func:`encode`."""
    return _from_json(json.loads(text))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


_STR = json.encoder.encode_basestring  # what _ENCODER writes strings with (no ASCII escaping)
_CONSTANTS = {None: "null", True: "true", False: "false"}


def dumps(data: Any) -> str:
    """The one JSON spelling used everywhere, so equal data gives equal text."""
    # One shared encoder: json.dumps with options builds a new one per call,
    # which was a third of the cost of seeding an item.
    kind = type(data)
    if kind is str:
        return _STR(data)
    if kind is int:
        # What the encoder writes for an int, without its set-up per call (the
        # most of reading a cell that holds a number, as ``order`` and most
        # estimates are).
        return int.__repr__(data)
    if data is None or kind is bool:
        return _CONSTANTS[data]
    if kind is dict and len(data) == 1:
        # A tag or node marker ({"$date": "..."}): spelled as the encoder would,
        # without the encoder's set-up per call (most of a field cell's reading).
        ((key, value),) = data.items()
        if type(key) is str and type(value) is str:
            return "{" + _STR(key) + ":" + _STR(value) + "}"
    return _ENCODER.encode(data)


def to_json(value: Value) -> Any:
    """The JSON-ready form of a value (tags for dates and the like)."""
    return _to_json(value)


def from_json(data: Any) -> Value:
    """Inverse of :func:`to_json`."""
    return _from_json(data)


def canonical(value: Value) -> str:
    """The comparison key of a value (same as its encoding)."""
    return encode(value)


def same(a: Value, b: Value) -> bool:
    """Strict equality: ``1``, ``1.0`` and ``True`` are three different values."""
    return encode(a) == encode(b)


def _to_json(value: Value) -> Any:  # noqa: PLR0911 - one branch per YAML type
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= JS_SAFE_INT else {"$int": str(value)}
    if isinstance(value, float):
        # JSON readers in JavaScript turn 1.0 into the integer 1; tag such floats.
        if math.isfinite(value) and not value.is_integer():
            return value
        return {"$float": repr(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return _map_to_json(value)
    raise UnsupportedValue(f"unsupported value of type {type(value).__name__}")


def _map_to_json(value: Mapping[Any, Any]) -> Any:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise UnsupportedValue(f"non-string key {key!r}")
        out[key] = _to_json(item)
    if len(out) == 1 and next(iter(out)) in _TAGS:
        return {"$map": out}
    return out


def _from_json(data: Any) -> Value:
    if isinstance(data, list):
        return [_from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((tag, inner),) = data.items()
        decoder = _DECODERS.get(tag)
        if decoder is not None:
            return decoder(inner)
    return {k: _from_json(v) for k, v in data.items()}


_DECODERS: dict[str, Callable[[Any], Value]] = {
    "$date": dt.date.fromisoformat,
    "$datetime": dt.datetime.fromisoformat,
    "$float": float,
    "$int": int,
    "$map": lambda inner: {k: _from_json(v) for k, v in inner.items()},
}


def check(value: Value) -> None:
    """Raise :class:`UnsupportedValue` unless ``value`` can be carried."""
    _to_json(value)
