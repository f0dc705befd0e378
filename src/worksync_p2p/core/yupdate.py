"""Whether a Yjs update brings anything new to a document, decided without applying it.

In a mesh every peer forwards what it receives, so most updates a peer gets
are copies of ones it already holds; applying one would change nothing, but
the caller would still persist it and render the item to compare with its
file. The check here costs microseconds, all of it in Rust:

* ``get_update(update, state)`` keeps the structs of ``update`` that the
  document's state vector lacks; with none left, every insertion is already
  here. (A struct whose dependencies are missing is kept too: pending updates
  go on to the normal path and are stored as before.)
* What is left is the update's delete set. The document's own delete set is
  its snapshot minus the state vector at its end; merged with the update's, it
  must come out unchanged. A merge that merely encodes differently counts as
  "new": the caller then takes the normal path, which is always right.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Snapshot, get_update, merge_updates

_NO_STRUCTS = 0


def holds(doc: Doc[Any], update: bytes) -> bool:
    """True when ``doc`` already has every insertion and deletion of ``update``.

    False for an update that does not decode: applying it then raises the
    error the caller reports (the same as before this check existed).
    """
    state = doc.get_state()
    try:
        rest = get_update(update, state)
    except ValueError:
        return False
    if not rest or rest[0] != _NO_STRUCTS:
        return False
    snapshot = Snapshot.from_doc(doc).encode()
    if not snapshot.endswith(state):
        return False  # not the layout this relies on (delete set, then state vector)
    ours = bytes([_NO_STRUCTS]) + snapshot[: len(snapshot) - len(state)]
    return rest == ours or merge_updates(ours, rest) == ours


def sole_writer(doc: Doc[Any]) -> int | None:
    """The client id of the only writer ``doc`` has had, if it never deleted
    anything; None otherwise.

    Read from the document's snapshot, which encodes its delete set (empty: a
    zero count) and then its state vector (one client: a count of one, the
    client id and its clock, all variable-length integers).
    """
    snapshot = Snapshot.from_doc(doc).encode()
    if snapshot[:2] != b"\x00\x01":
        return None
    client, at = _varuint(snapshot, 2)
    _clock, at = _varuint(snapshot, at)
    return client if at == len(snapshot) else None


def _varuint(data: bytes, at: int) -> tuple[int, int]:
    """lib0's unsigned varint at ``at``: its value and the offset after it."""
    value = shift = 0
    while at < len(data):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise ValueError("a variable-length integer cut short")


def waiting(doc: Doc[Any], update: bytes) -> bytes | None:
    """What of ``update``, already applied to ``doc``, Yjs still holds back: None if nothing.

    An update whose dependencies are missing (a writer's second edit before its
    first) is applied in part: its delete set at once, its insertions held as
    pending structs until what they depend on arrives. Those insertions are the
    structs the document's state vector does not cover; what is returned holds
    them (and the update's delete set), so it can be applied again to a document
    rebuilt from its encoded state, which drops pending structs. pycrdt has no
    pending API, and ``get_state(update)`` of a gapped update is empty, so the
    check diffs the update against the state instead. An update that does not
    decode waits for nothing (applying it raised already).
    """
    try:
        rest = get_update(update, doc.get_state())
    except ValueError:
        return None
    return rest if rest and rest[0] != _NO_STRUCTS else None


def joined(held: bytes, update: bytes) -> bytes:
    """``held`` (what ``waiting`` returned) and ``update`` as one update, to apply together.

    Raises ValueError for an update that does not decode.
    """
    return merge_updates(held, update)
