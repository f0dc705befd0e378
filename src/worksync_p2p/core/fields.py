"""Frontmatter as a flat Y.Map of registers and list elements.

Layout of the ``fields`` map (every value is a JSON string):

* register cell ``<path>|<writer>`` -> ``[ms, counter, order, value]``: one
  writer's latest value for the field at ``path`` (a JSON list of keys).
  ``value`` is the JSON form of a scalar (see ``values.py``) or a node marker:
  ``{"$node": "map"}``, ``{"$node": "list"}`` or ``{"$node": "absent"}``.
* element cell ``<path>#<element id>`` -> ``[position, value]``: one element
  of the list at ``path``.

Why flat, and why one cell per writer: Yjs keeps only one of two concurrent
sets of a map key (chosen by client id, not time), and a nested container
created twice concurrently silently drops one side's contents. Here two
writers never write the same key, so both concurrent values stay visible; the
register resolves to the highest hybrid-logical-clock stamp and the rest are
the conflicts the user is shown. A writer replacing a value deletes exactly
the cells it has seen, so later edits clear old conflicts and concurrent ones
survive. No container is ever created or deleted after genesis.

List elements are keyed by a hash of their value plus an occurrence number:
two peers adding the same tag concurrently write the same cell (one tag, not
two); different additions both survive; removing deletes one cell only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, NamedTuple

from pycrdt import Map

from worksync_p2p.core import positions, values
from worksync_p2p.core.hlc import Stamp

FieldPath = tuple[str, ...]

MAP_NODE = values.dumps({"$node": "map"})
LIST_NODE = values.dumps({"$node": "list"})
ABSENT = values.dumps({"$node": "absent"})
_NODES = (MAP_NODE, LIST_NODE, ABSENT)

GENESIS_PREFIX = "g:"


def map_items(cells: Map[Any]) -> dict[str, Any]:
    """Every entry of a flat map in one read.

    Iterating a pycrdt Map opens a transaction per key; its JSON form comes
    from one call into Rust, several times faster for the maps here, whose
    values are all strings. A value that has no JSON form falls back to the
    slow path, where the schema checks of the callers judge it.

    The entries come sorted by key. A pycrdt Map keeps its entries in a Rust
    HashMap whose seed is random in each process, so its own order (of
    ``items()`` and of its JSON alike) differs from run to run: the order of
    a register's cells, of new fields' children and of the cells a save
    writes followed it, so one seed made different updates, and took
    different decisions (B79), in two processes.
    """
    try:
        data = json.loads(str(cells))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = dict(cells.items())
    return dict(sorted(data.items()))


@functools.lru_cache(maxsize=4096)
def path_key(path: FieldPath) -> str:
    return values.dumps(list(path))


_UNDECODED: Any = object()


# Cells are named tuples, not frozen dataclasses: a first sync reads some
# twenty per item, each once, and a frozen dataclass's constructor (one
# ``object.__setattr__`` per field) cost twice as much as the rest of making one.


class RegisterCell(NamedTuple):
    key: str
    stamp: Stamp
    order: int
    value: str  # canonical JSON text of the value or a node marker
    decoded: Any = _UNDECODED
    """``value`` decoded, when the reader had it at hand (saves decoding it twice)."""


class ElementCell(NamedTuple):
    key: str
    element_id: str
    position: positions.Position
    value: str  # canonical JSON text
    decoded: Any = _UNDECODED


def _decoded(cell: RegisterCell | ElementCell) -> Any:
    """The cell's value; a fresh copy of a list or mapping, so callers may change it."""
    if cell.decoded is _UNDECODED or isinstance(cell.decoded, list | dict):
        return values.decode(cell.value)
    return cell.decoded


# The decoder's C scanner; typeshed does not declare the attribute.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads``, minus its layers of Python calls for text without surrounding
    blanks (every cell we write): the C scanner alone, or json.loads itself."""
    try:
        data, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # not JSON at its start: json.loads says why
    return data if end == len(text) else json.loads(text)


@functools.lru_cache(maxsize=4096)
def _field_path(text: str) -> FieldPath:
    """The path part of a cell key; the same few paths recur in every item."""
    path = tuple(_loads(text))
    if not all(isinstance(part, str) for part in path):
        raise TypeError("path parts must be strings")
    return path


# A document is read again after each change, and most of its cells are the
# ones it held before: each cell is parsed once, then taken from here (cells
# are frozen, and ``_decoded`` copies what a caller could change). A cell
# that does not parse raises again each time: nothing is kept for it.
_CELLS_KEPT = 8192


@functools.lru_cache(maxsize=_CELLS_KEPT)
def _key_parts(key: str) -> tuple[FieldPath, str, str]:
    """A cell key's field path, its kind (``|`` register, ``#`` element) and the rest."""
    split = key.rindex("]") + 1
    return _field_path(key[:split]), key[split], key[split + 1 :]


@functools.lru_cache(maxsize=_CELLS_KEPT)
def _register_cell(key: str, raw: str, writer: str) -> RegisterCell:
    data = _loads(raw)
    value = values.dumps(data[3])
    decoded = _UNDECODED
    if value not in _NODES:
        decoded = values.from_json(data[3])  # refuses a tag that does not decode
    stamp = Stamp(int(data[0]), int(data[1]), writer)
    return RegisterCell(key, stamp, int(data[2]), value, decoded)


@functools.lru_cache(maxsize=_CELLS_KEPT)
def _element_cell(key: str, raw: str, element_id: str) -> ElementCell:
    data = _loads(raw)
    position = [int(digit) for digit in data[0]]
    decoded = values.from_json(data[1])
    return ElementCell(key, element_id, position, values.dumps(data[1]), decoded)


@dataclass
class FieldIndex:
    """A parsed view of the ``fields`` map, built once per read or write."""

    active_genesis: str | None
    registers: dict[FieldPath, list[RegisterCell]] = field(default_factory=dict)
    elements: dict[FieldPath, list[ElementCell]] = field(default_factory=dict)
    children: dict[FieldPath, list[str]] = field(default_factory=dict)
    malformed: int = 0

    @classmethod
    def read(cls, fields: Map[Any], active_genesis: str | None) -> FieldIndex:
        return cls.of(map_items(fields), active_genesis)

    @classmethod
    def of(cls, cells: Mapping[str, Any], active_genesis: str | None) -> FieldIndex:
        """The index of cells already read (``map_items``)."""
        index = cls(active_genesis)
        for key, raw in cells.items():
            try:
                index._add(key, raw)
            except (ValueError, IndexError, KeyError, TypeError, AttributeError):
                # A cell that does not follow the schema came from a buggy or
                # hostile client: it is not part of the item, and must not
                # stop the item from rendering.
                index.malformed += 1
        return index

    def _add(self, key: str, raw: str) -> None:
        path, kind, rest = _key_parts(key)
        if kind == "|":
            if self._dormant(rest):
                return
            cell = _register_cell(key, raw, rest)
            if path not in self.registers:
                self.registers[path] = []
                if path:
                    self.children.setdefault(path[:-1], []).append(path[-1])
            self.registers[path].append(cell)
        elif kind == "#" and not self._dormant(rest):
            self.elements.setdefault(path, []).append(_element_cell(key, raw, rest))

    def _dormant(self, writer_or_element: str) -> bool:
        """Cells written by a genesis that lost to another are not part of the item."""
        if not writer_or_element.startswith(GENESIS_PREFIX):
            return False
        genesis = writer_or_element[len(GENESIS_PREFIX) :].split(":", 1)[0]
        return genesis != self.active_genesis

    def winner(self, path: FieldPath) -> RegisterCell | None:
        cells = self.registers.get(path)
        return max(cells, key=lambda c: c.stamp) if cells else None

    def live_elements(self, path: FieldPath) -> list[ElementCell]:
        return sorted(self.elements.get(path, []), key=lambda e: (e.position, e.element_id))

    def max_stamp(self) -> Stamp | None:
        stamps = [c.stamp for cells in self.registers.values() for c in cells]
        return max(stamps) if stamps else None


def resolve(index: FieldIndex) -> dict[str, Any]:
    """The frontmatter mapping the current state stands for."""
    return _resolve_map(index, ())


def _resolve_map(index: FieldIndex, path: FieldPath) -> dict[str, Any]:
    entries: list[tuple[int, str, Any]] = []
    for name in index.children.get(path, []):
        cell = index.winner((*path, name))
        if cell is None or cell.value == ABSENT:
            continue
        entries.append((cell.order, name, _materialize(index, (*path, name), cell)))
    entries.sort(key=lambda e: (e[0], e[1]))
    return {name: value for _, name, value in entries}


def _materialize(index: FieldIndex, path: FieldPath, cell: RegisterCell) -> Any:
    if cell.value == MAP_NODE:
        return _resolve_map(index, path)
    if cell.value == LIST_NODE:
        return [_decoded(e) for e in index.live_elements(path)]
    return _decoded(cell)


@dataclass(frozen=True)
class FieldConflict:
    """A field whose register holds concurrent values: the winner and the rest."""

    path: FieldPath
    winner: RegisterCell
    losers: tuple[RegisterCell, ...]


def conflicts(index: FieldIndex) -> Iterator[FieldConflict]:
    """Fields with concurrent different values (the same value set twice is agreement)."""
    for path, cells in sorted(index.registers.items()):
        ordered = sorted(cells, key=lambda c: c.stamp, reverse=True)
        losers = tuple(c for c in ordered[1:] if c.value != ordered[0].value)
        if losers:
            yield FieldConflict(path, ordered[0], losers)


def seeded_values(index: FieldIndex) -> dict[str, Any]:
    """The values the active genesis of ``index`` wrote itself, by dotted field path."""
    writer = GENESIS_PREFIX + (index.active_genesis or "")
    out: dict[str, Any] = {}
    for path, cells in sorted(index.registers.items()):
        for cell in cells:
            if cell.stamp.writer == writer and cell.value not in _NODES:
                out[".".join(path)] = values.decode(cell.value)
    for path, elements in sorted(index.elements.items()):
        own = [e for e in elements if e.element_id.startswith(writer + ":")]
        if own:
            ordered = sorted(own, key=lambda e: (e.position, e.element_id))
            out[".".join(path)] = [values.decode(e.value) for e in ordered]
    return out


def decode_cell_value(value: str) -> Any:
    """A register value for display: node markers become their kind."""
    if value in _NODES:
        return {MAP_NODE: "<map>", LIST_NODE: "<list>", ABSENT: "<removed>"}[value]
    return values.decode(value)


def unseen(index: FieldIndex, seen: FieldIndex) -> frozenset[str]:
    """Register cells of ``index`` that a file showing ``seen`` knew nothing of.

    A cell is known when ``seen`` holds it unchanged, or when it holds the value
    the file showed for its field anyway (the same value set twice is agreement).
    A value that lost to the file's without changing it is not known: a save
    replacing the file's value must leave it as a conflict, not bury it.
    """
    known = {(c.key, c.stamp, c.value) for cells in seen.registers.values() for c in cells}
    out: set[str] = set()
    for path, cells in index.registers.items():
        shown = seen.winner(path)
        for cell in cells:
            if (cell.key, cell.stamp, cell.value) in known:
                continue
            if shown is None or cell.value != shown.value:
                out.add(cell.key)
    return frozenset(out)


class FieldWriter:
    """Writes the difference between the current fields and a new mapping.

    ``stamp_after(previous)`` returns a fresh stamp of this writer that sorts
    after ``previous`` (a causally later edit wins even if clocks are skewed).
    A value replaced deletes the cells the writer has seen, all but ``keep``
    (cells the file being saved never showed, see ``unseen``).
    Must be used inside a transaction.
    """

    def __init__(
        self,
        fields: Map[Any],
        index: FieldIndex,
        writer: str,
        stamp_after: Any,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        self._fields = fields
        self._index = index
        self._writer = writer
        self._stamp_after = stamp_after
        self._keep = keep
        self._element_prefix = ""
        if writer.startswith(GENESIS_PREFIX):
            # Genesis elements are namespaced so that different geneses never share cells.
            self._element_prefix = writer + ":"

    def write_map(self, path: FieldPath, new: Mapping[str, Any]) -> None:
        for name in self._index.children.get(path, []):
            cell = self._index.winner((*path, name))
            if name not in new and cell is not None and cell.value != ABSENT:
                self._set_register((*path, name), ABSENT, cell.order)
        for order, (name, value) in enumerate(new.items()):
            self._write_value((*path, name), value, order)

    def _write_value(self, path: FieldPath, value: Any, order: int) -> None:
        cell = self._index.winner(path)
        if isinstance(value, Mapping):
            if cell is None or cell.value != MAP_NODE:
                self._set_register(path, MAP_NODE, order)
            self.write_map(path, value)
        elif isinstance(value, list):
            if cell is None or cell.value != LIST_NODE:
                self._set_register(path, LIST_NODE, order)
            self._write_list(path, value)
        else:
            text = values.encode(value)
            if cell is None or cell.value != text:
                self._set_register(path, text, order)

    def _set_register(self, path: FieldPath, value: str, order: int) -> None:
        seen = self._index.registers.get(path, [])
        latest = max((c.stamp for c in seen), default=None)
        stamp: Stamp = self._stamp_after(latest)
        for cell in seen:
            if cell.key not in self._keep:
                del self._fields[cell.key]
        key = f"{path_key(path)}|{self._writer}"
        # ``value`` is canonical JSON text already: splice it in, no decode/encode.
        self._fields[key] = f"[{stamp.ms},{stamp.counter},{order},{value}]"

    def _write_list(self, path: FieldPath, new: list[Any]) -> None:
        current = self._index.live_elements(path)
        new_texts = [values.encode(v) for v in new]
        matcher = SequenceMatcher(None, [e.value for e in current], new_texts, autojunk=False)
        taken = {e.element_id for e in current}
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            for element in current[i1:i2]:
                del self._fields[element.key]
            lo = current[i1 - 1].position if i1 > 0 else None
            hi = current[i2].position if i2 < len(current) else None
            if lo is not None and hi is not None and lo >= hi:
                # Concurrent inserts took one position; the ids order them. There
                # is no room between equal positions: go just after instead.
                hi = None
            for text in new_texts[j1:j2]:
                lo = positions.between(lo, hi)
                element_id = self._element_id(text, taken)
                taken.add(element_id)
                key = f"{path_key(path)}#{element_id}"
                self._fields[key] = f"[{values.dumps(lo)},{text}]"

    def _element_id(self, text: str, taken: set[str]) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        for n in range(len(taken) + 1):
            candidate = f"{self._element_prefix}{digest}:{n}"
            if candidate not in taken:
                return candidate
        raise AssertionError("unreachable: more candidates than taken ids")
