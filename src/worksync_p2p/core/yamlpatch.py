"""Change the text of a YAML mapping field by field, keeping the rest intact.

Inputs are the YAML text, its composed node tree (whose marks give exact
character offsets) and the old and new fields; the output is the text with
only the changed entries rewritten. Edits are collected as non-overlapping
spans and applied in one pass at the end.

Where a layout is too unusual to edit locally (flow mappings at the root,
explicit keys, compact items losing their first key...), the enclosing value
is rewritten whole; at the root that means :func:`patch` returns None and the
caller regenerates. The caller re-reads the result in any case, so a patch
that reads back wrong is never written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from worksync_p2p.core import yamlemit

_STR_TAG = "tag:yaml.org,2002:str"
_BLOCK_HEADER = re.compile(r"[|>][-+0-9]*")


class _Unpatchable(Exception):
    """This layout cannot be edited locally; rewrite the enclosing value."""


@dataclass(frozen=True, order=True)
class _Edit:
    start: int
    seq: int
    end: int
    text: str


@dataclass(frozen=True)
class _Entry:
    key: str
    value: Node
    start: int  # where removing the entry starts
    column: int  # column of the key
    colon_end: int


@dataclass(frozen=True)
class _Regions:
    """Where an entry's value lives: a slot after the colon and lines below."""

    slot_end: int
    spacing: str
    body_start: int
    body_end: int


def equal(a: Any, b: Any) -> bool:
    """Strict equality of values, ignoring the order of mapping keys.

    Agrees with :func:`values.same` on key-sorted values (``1``, ``1.0`` and
    ``True`` differ, so do ``0.0`` and ``-0.0``, and two datetimes at one
    instant in different zones), without encoding either side.
    """
    exact = type(a)
    if exact is type(b) and exact in _EXACT:
        return bool(a == b)  # the common case, decided without the general checks
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(equal, a, b))
    kind = _scalar_kind(a)
    if kind != _scalar_kind(b):
        return False
    if kind in (float, dt.date, dt.datetime):
        return _spelling(a) == _spelling(b)
    return bool(a == b)


_EXACT = frozenset({str, int, bool, type(None)})
"""Types for which two values of that very type are strictly equal exactly when ``==``."""


def _scalar_kind(value: Any) -> type | None:
    for kind in (bool, int, float, str, dt.datetime, dt.date):
        if isinstance(value, kind):
            return kind
    return None if value is None else type(value)


def _spelling(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value.isoformat())


def patch(
    text: str, root: Node | None, old: dict[str, Any], new: dict[str, Any], newline: str
) -> str | None:
    """``text`` edited to read as ``new``, or None if it cannot be done locally."""
    patcher = _Patcher(text, newline)
    if root is None:
        # Only comments and blank lines: keep them, add the fields after.
        return text + patcher.lines(yamlemit.document(new))
    try:
        patcher.mapping(root, old, new)
        return patcher.apply()
    except _Unpatchable:
        return None


class _Patcher:
    def __init__(self, text: str, newline: str) -> None:
        self.text = text
        self.newline = newline
        self.edits: list[_Edit] = []

    def lines(self, lines: list[str]) -> str:
        return "".join(line + self.newline for line in lines)

    def edit(self, start: int, end: int, new_text: str) -> None:
        if self.text[start:end] != new_text:
            self.edits.append(_Edit(start, len(self.edits), end, new_text))

    def apply(self) -> str:
        out: list[str] = []
        pos = 0
        for edit in sorted(self.edits):
            if edit.start < pos:
                raise _Unpatchable
            out += (self.text[pos : edit.start], edit.text)
            pos = edit.end
        out.append(self.text[pos:])
        return "".join(out)

    def attempt(self, action: Callable[[], None]) -> bool:
        saved = len(self.edits)
        try:
            action()
        except _Unpatchable:
            del self.edits[saved:]
            return False
        return True

    def mapping(self, node: Node, old: dict[str, Any], new: dict[str, Any]) -> None:
        entries = self.entries(node)
        for entry in entries:
            if entry.key not in new:
                self.remove(entry)
            elif not equal(old[entry.key], new[entry.key]):
                self.change(entry, old[entry.key], new[entry.key])
        if any(key not in old for key in new):
            self.add(entries, old, new)

    def add(self, entries: list[_Entry], old: dict[str, Any], new: dict[str, Any]) -> None:
        """Each new key goes in before the kept key that follows it in ``new``, or last.

        A key is new also when a mended template lost its line (see headmerge):
        put back where it stood, it leaves the order of the file as it was.
        """
        by_key = {entry.key: entry for entry in entries}
        end = self.regions(entries[-1]).body_end
        column = entries[0].column
        keys = list(new)
        for index, key in enumerate(keys):
            if key in old:
                continue
            following = next((by_key[k] for k in keys[index + 1 :] if k in old), None)
            at = end
            if following is not None and following.start == _line_start(self.text, following.start):
                at = following.start
            self.edit(at, at, self.lines(yamlemit.entry_lines(key, new[key], column)))

    def entries(self, node: Node) -> list[_Entry]:
        if not _is_block(node, MappingNode) or not node.value:
            raise _Unpatchable
        column = node.value[0][0].start_mark.column
        return [self.entry(key, value, column, i == 0) for i, (key, value) in enumerate(node.value)]

    def entry(self, key: Node, value: Node, column: int, first: bool) -> _Entry:
        single_line = key.start_mark.line == key.end_mark.line
        if not isinstance(key, ScalarNode) or key.tag != _STR_TAG or not single_line:
            raise _Unpatchable
        if key.style in ("|", ">") or key.start_mark.column != column:
            raise _Unpatchable
        start = _line_start(self.text, key.start_mark.index)
        prefix = self.text[start : key.start_mark.index]
        if prefix.strip(" "):
            # Only the first key of a compact "- key: value" item shares its line.
            if not first or prefix.strip(" -"):
                raise _Unpatchable
            start = key.start_mark.index
        colon = key.end_mark.index
        while self.text[colon : colon + 1] in (" ", "\t"):
            colon += 1
        if self.text[colon : colon + 1] != ":":
            raise _Unpatchable
        return _Entry(key.value, value, start, column, colon + 1)

    def remove(self, entry: _Entry) -> None:
        if entry.start != _line_start(self.text, entry.start):
            raise _Unpatchable
        self.edit(entry.start, self.regions(entry).body_end, "")

    def change(self, entry: _Entry, old: Any, new: Any) -> None:
        if not self.attempt(lambda: self.change_inside(entry.value, old, new)):
            self.replace(entry, new)

    def change_inside(self, node: Node, old: Any, new: Any) -> None:
        """Edit inside a collection, raising :class:`_Unpatchable` when it is not one."""
        if isinstance(old, dict) and isinstance(new, dict) and new and _is_block(node, MappingNode):
            self.mapping(node, old, new)
        elif _same_length_lists(old, new) and _is_block(node, SequenceNode):
            self.sequence(node, old, new)
        else:
            raise _Unpatchable

    def sequence(self, node: Node, old: list[Any], new: list[Any]) -> None:
        for item, old_item, new_item in zip(node.value, old, new, strict=True):
            if equal(old_item, new_item):
                continue
            both_maps = isinstance(old_item, dict) and isinstance(new_item, dict) and new_item
            if both_maps and _is_block(item, MappingNode):
                self.mapping(item, old_item, new_item)
                continue
            text = yamlemit.inline_item(new_item, _style_of(item))
            if text is None or _kind(item) != "inline":
                raise _Unpatchable
            self.edit(item.start_mark.index, item.end_mark.index, text)

    def replace(self, entry: _Entry, new: Any) -> None:
        head, below = yamlemit.value_form(new, entry.column, _style_of(entry.value))
        regions = self.regions(entry)
        self.edit(entry.colon_end, regions.slot_end, regions.spacing + head if head else "")
        self.edit(regions.body_start, regions.body_end, self.lines(below))

    def regions(self, entry: _Entry) -> _Regions:
        node, text, colon = entry.value, self.text, entry.colon_end
        start, end = node.start_mark.index, node.end_mark.index
        kind = _kind(node)
        if kind == "empty":
            after = _line_after(text, colon)
            return _Regions(colon, " ", after, after)
        if kind == "inline":
            after = _line_after(text, end)
            return _Regions(end, text[colon:start], after, after)
        if kind == "block":
            return _Regions(colon, " ", _line_after(text, colon), _region_end(text, node))
        header = _BLOCK_HEADER.search(text, start)
        if header is None:
            raise _Unpatchable
        body_start = _line_after(text, start)
        return _Regions(header.end(), text[colon:start], body_start, _scalar_end(text, node))


def _kind(node: Node) -> str:
    if isinstance(node, ScalarNode):
        if node.style in ("|", ">"):
            return "blockscalar"
        empty = node.value == "" and not node.style and node.start_mark.index == node.end_mark.index
        return "empty" if empty else "inline"
    return "inline" if _flow(node) else "block"


def _flow(node: Node) -> bool:
    return isinstance(node, CollectionNode) and bool(node.flow_style)


def _is_block(node: Node, kind: type[Node]) -> bool:
    return isinstance(node, kind) and not _flow(node)


def _same_length_lists(old: Any, new: Any) -> bool:
    return isinstance(old, list) and isinstance(new, list) and len(old) == len(new)


def _style_of(node: Node) -> yamlemit.Style:
    if isinstance(node, ScalarNode):
        return yamlemit.Style(quote=node.style if node.style in ("'", '"') else "")
    if _flow(node):
        return yamlemit.Style(flow=True)
    if isinstance(node, SequenceNode):
        return yamlemit.Style(seq_indent=node.start_mark.column)
    return yamlemit.Style(map_indent=node.start_mark.column)


def _region_end(text: str, node: Node) -> int:
    """Start of the first line after a block value, trailing blank lines excluded."""
    while isinstance(node, MappingNode | SequenceNode) and not _flow(node) and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last
    if isinstance(node, ScalarNode) and node.style in ("|", ">"):
        return _scalar_end(text, node)
    return _line_after(text, node.end_mark.index)


def _scalar_end(text: str, node: Node) -> int:
    start, end = node.start_mark.index, node.end_mark.index
    header = _BLOCK_HEADER.search(text, start)
    if header is not None and "+" in header.group():
        # Kept trailing blank lines are content of a "|+" scalar.
        return _line_start(text, end)
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return _line_after(text, end)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_after(text: str, index: int) -> int:
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1
