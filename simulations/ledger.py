"""What the simulated people did, kept so the checkers can judge the end state.

* Markers: every saved edit adds a unique marker (``textedit.marker``). A
  marker the person who saved an edit could see going away (a line they
  deleted, a value they replaced, a file they removed) is *retracted*: the
  system may drop it. Every other marker must survive, in a file or in the
  conflicts record.
* Deletes and edits as the nodes recorded them: for each local update of an
  item, the Yjs state vector it reached. An item that is alive at the end must
  have an edit its delete had not seen (an edit concurrent with or after it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pycrdt

StateVector = dict[int, int]


def _varuints(raw: bytes, limit: int) -> list[int]:
    """The first ``limit`` lib0 unsigned varints of ``raw``."""
    values: list[int] = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            values.append(value)
            if len(values) == limit:
                break
            value = shift = 0
    return values


def decode_state_vector(raw: bytes) -> StateVector:
    """lib0 encoding: a count, then (client, clock) pairs, all unsigned varints."""
    values = _varuints(raw, 1 << 20)
    count = values[0] if values else 0
    return {values[1 + 2 * i]: values[2 + 2 * i] for i in range(count)}


def first_operation(update: bytes) -> StateVector:
    """``{client: clock + 1}`` for the first operation of a Yjs v1 update, {} if it has none.

    ``pycrdt.get_state`` cannot tell: it applies the update to an empty document,
    where a delta update waits for its dependencies and shows nothing. The
    update starts with the number of clients, then for the first client the
    number of its structs, its id and the clock of its first operation. A local
    update is one transaction of one client, so the first client is the writer,
    and a state that holds its first operation holds the whole update.
    """
    values = _varuints(update, 4)
    if len(values) < 4 or values[0] == 0:
        return {}
    return {values[2]: values[3] + 1}


def covers(seen: StateVector, update: StateVector) -> bool:
    """Whether a state that reached ``seen`` already held every operation of ``update``."""
    return all(seen.get(client, 0) >= clock for client, clock in update.items())


@dataclass
class Marker:
    text: str
    peer: str
    op: int
    what: str
    retracted: bool = False
    shared: bool = False  # the same edit, saved on two peers: expected once
    dup_exempt: bool = False  # a concurrent third edit kept the duplicate repair from applying


@dataclass
class Delete:
    key: str
    peer: str
    at_ms: int
    seen: StateVector


@dataclass
class Ledger:
    markers: dict[str, Marker] = field(default_factory=dict)
    deletes: list[Delete] = field(default_factory=list)
    # What a peer's replica held when its person removed the file: the delete
    # is decided later (after a grace period) but has seen only this.
    delete_seen: dict[tuple[str, str], bytes] = field(default_factory=dict)
    edits: dict[str, list[StateVector]] = field(default_factory=dict)
    saves: int = 0
    ops_done: int = 0
    ops_skipped: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)

    def add(self, text: str, peer: str, what: str, shared: bool = False) -> None:
        if text in self.markers:
            self.markers[text].shared = True
            return
        self.markers[text] = Marker(text, peer, self.ops_done, what, shared=shared)

    def retract(self, texts: tuple[str, ...] | list[str]) -> None:
        for text in texts:
            marker = self.markers.get(text)
            if marker is not None:
                marker.retracted = True

    def edited(self, key: str, update: bytes) -> None:
        operation = first_operation(update)
        if operation:
            self.edits.setdefault(key, []).append(operation)

    def deleted(self, key: str, peer: str, now_ms: int, state: bytes) -> None:
        self.deletes.append(Delete(key, peer, now_ms, decode_state_vector(pycrdt.get_state(state))))
