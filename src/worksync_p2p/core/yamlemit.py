"""Deterministic YAML text for frontmatter values.

Every function here is a pure function of its arguments, so peers that hold
equal fields emit byte-identical text. The output is meant to be loaded by
PyYAML's safe loader (YAML 1.1 resolution rules), which is why plain scalars
are checked against PyYAML's own implicit resolver: ``yes``, ``1:20`` and
``2025-01-12`` look like strings but load as a bool, an int and a date.

Lines are returned without line breaks; the caller joins them with the
newline style of the file being written.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from worksync_p2p.core.values import UnsupportedValue

_RESOLVER = Resolver()
_STR_TAG = "tag:yaml.org,2002:str"

# Simple keys longer than this are refused by YAML scanners (the limit is 1024).
_SIMPLE_KEY_MAX = 1000

# Characters that must be escaped in a double-quoted scalar: controls, YAML
# 1.1 line breaks (NEL, LS, PS), the BOM, non-characters and surrogates.
_ESCAPE = re.compile('[\x00-\x1f\x7f-\x9f\ufeff\ufffe\uffff\u2028\u2029\ud800-\udfff"\\\\]')
_SHORT_ESCAPES = {
    "\x00": "\\0",
    "\x07": "\\a",
    "\x08": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\x0b": "\\v",
    "\x0c": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    '"': '\\"',
    "\\": "\\\\",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}
_UNSAFE_IN_BLOCK = re.compile("[\x00-\x1f\x7f-\x9f\ufeff\ufffe\uffff\u2028\u2029\ud800-\udfff]")
_PLAIN_FIRST = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_INDICATORS = frozenset(",[]{}:")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Style:
    """How the value being replaced was written, so its successor looks alike."""

    flow: bool = False
    quote: str = ""
    seq_indent: int | None = None  # column of the dashes of a block sequence
    map_indent: int | None = None  # column of the keys of a block mapping


def scalar(value: Any, flow: bool = False, quote: str = "") -> str:  # noqa: PLR0911
    """Single-line text of a value (collections in flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dt.datetime):
        return _datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return _string(value, flow, quote)
    if isinstance(value, Mapping):
        return _flow_mapping(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(scalar(v, flow=True) for v in value) + "]"
    raise UnsupportedValue(f"unsupported value of type {type(value).__name__}")


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # YAML 1.1 floats need a dot: "1e-05" would load as a string.
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _datetime(value: dt.datetime) -> str:
    offset = value.utcoffset()
    if offset is not None and offset % dt.timedelta(minutes=1):
        raise UnsupportedValue(f"UTC offset {offset} is not a whole number of minutes")
    text = value.isoformat()
    if offset == dt.timedelta(0):
        text = text[: -len("+00:00")] + "Z"
    return text


def _string(value: str, flow: bool, quote: str) -> str:
    if _SURROGATE.search(value):
        raise UnsupportedValue("string with a lone surrogate cannot be written as UTF-8")
    if quote == "'" and not _UNSAFE_IN_BLOCK.search(value) and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and plain_ok(value, flow):
        return value
    return double_quoted(value)


def double_quoted(value: str) -> str:
    return '"' + _ESCAPE.sub(_escape_char, value) + '"'


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def plain_ok(value: str, flow: bool = False) -> bool:
    """Whether ``value`` can be written unquoted and still load as this string."""
    if not value or value[0] in " \t" or value[-1] in " \t" or value[0] in _PLAIN_FIRST:
        return False
    if _UNSAFE_IN_BLOCK.search(value):
        return False
    if ": " in value or " #" in value or value.endswith(":"):
        return False
    if value.startswith(("---", "...")):
        return False
    if flow and any(c in _FLOW_INDICATORS for c in value):
        return False
    tag: str = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG


def _flow_mapping(value: Mapping[str, Any]) -> str:
    parts = []
    for key, item in value.items():
        key_text = key_scalar(key, flow=True)
        prefix = "? " if len(key_text) > _SIMPLE_KEY_MAX else ""
        parts.append(f"{prefix}{key_text}: {scalar(item, flow=True)}")
    return "{" + ", ".join(parts) + "}"


def key_scalar(key: str, flow: bool = False) -> str:
    if not isinstance(key, str):
        raise UnsupportedValue(f"non-string key {key!r}")
    return _string(key, flow, "")


def literal_ok(value: str) -> bool:
    """Whether a multi-line string survives a ``|`` or ``|-`` block scalar unchanged.

    Strings ending in blank lines would need ``|+``, which swallows any blank
    line that follows it in the file; they are double-quoted instead.
    """
    if "\n" not in value or value.endswith("\n\n"):
        return False
    if _UNSAFE_IN_BLOCK.search(value.replace("\n", "")):
        return False
    lines = value.split("\n")
    if any(line != line.rstrip(" ") for line in lines):
        return False
    first = next((line for line in lines if line), None)
    # Indentation of a block scalar is detected from its first non-empty line.
    return first is not None and not first.startswith(" ")


def literal(value: str, indent: int) -> tuple[str, list[str]]:
    """Header (``|`` or ``|-``) and content lines of a block literal."""
    header = "|" if value.endswith("\n") else "|-"
    pad = " " * indent
    return header, [pad + line if line else "" for line in value.removesuffix("\n").split("\n")]


def value_form(value: Any, indent: int, style: Style = Style()) -> tuple[str, list[str]]:
    """How a mapping value is written: text after ``key:`` and the lines below.

    ``indent`` is the column of the key; the text is "" when the value lives
    entirely on the following lines (block collections) or is null.
    """
    if value is None:
        return "", []
    if isinstance(value, str) and "\n" in value and not style.quote and literal_ok(value):
        return literal(value, indent + 2)
    if isinstance(value, Mapping) and value and not style.flow:
        return "", mapping_lines(value, _pick(style.map_indent, indent + 2))
    if isinstance(value, list | tuple) and value and not style.flow:
        return "", sequence_lines(value, _pick(style.seq_indent, indent + 2))
    return scalar(value, quote=style.quote), []


def _pick(kept: int | None, default: int) -> int:
    return default if kept is None else kept


def mapping_lines(value: Mapping[str, Any], indent: int) -> list[str]:
    """Block mapping at column ``indent``, one entry after another."""
    lines: list[str] = []
    for key, item in value.items():
        lines.extend(entry_lines(key, item, indent))
    return lines


def entry_lines(key: str, value: Any, indent: int, style: Style = Style()) -> list[str]:
    pad = " " * indent
    key_text = key_scalar(key)
    text, below = value_form(value, indent, style)
    tail = f": {text}" if text else ":"
    if len(key_text) > _SIMPLE_KEY_MAX:
        return [f"{pad}? {key_text}", pad + tail, *below]
    return [pad + key_text + tail, *below]


def sequence_lines(value: Sequence[Any], indent: int) -> list[str]:
    """Block sequence whose dashes sit at column ``indent``."""
    lines: list[str] = []
    for item in value:
        lines.extend(_item_lines(item, indent))
    return lines


def _item_lines(item: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(item, Mapping) and item:
        nested = mapping_lines(item, indent + 2)
    elif isinstance(item, list | tuple) and item:
        nested = sequence_lines(item, indent + 2)
    elif isinstance(item, str) and "\n" in item and literal_ok(item):
        header, below = literal(item, indent + 2)
        return [f"{pad}- {header}", *below]
    else:
        return [f"{pad}- {scalar(item)}"]
    # Compact form: the first nested line moves up next to the dash.
    nested[0] = f"{pad}- {nested[0][indent + 2 :]}"
    return nested


def inline_item(item: Any, style: Style) -> str | None:
    """Single-line text for a sequence element, or None when it needs lines."""
    if isinstance(item, Mapping | list | tuple) and item and not style.flow:
        return None
    return scalar(item, quote=style.quote)


def document(fields: Mapping[str, Any]) -> list[str]:
    """The lines of a whole frontmatter mapping."""
    return mapping_lines(fields, 0)
