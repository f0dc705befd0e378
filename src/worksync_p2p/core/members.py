"""Workspace membership that syncs like an item: the revocation list.

The list lives in one CRDT document under a key no file can have, so it
travels through the same sync protocol, store and digests as the items, and a
peer that saw a revocation passes it on to every peer it meets. Revocation is
add-only: once revoked, a peer id stays revoked on every replica (a Y.Map key
per revoked peer, so concurrent revocations all survive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

MEMBERS_KEY = "\x00workspace"
"""No item key can start with NUL: ids come from YAML strings and paths."""


@dataclass(frozen=True)
class Revocation:
    peer_id: str
    by: str
    ms: int


def revoked_map(doc: Doc[Any]) -> Map[Any]:
    revoked: Map[Any] = doc.get("revoked", type=Map)
    return revoked


def revocations(doc: Doc[Any]) -> list[Revocation]:
    out = []
    for peer_id, raw in revoked_map(doc).items():
        try:
            data = json.loads(raw)
            out.append(Revocation(str(peer_id), str(data["by"]), int(data["ms"])))
        except (ValueError, KeyError, TypeError):
            out.append(Revocation(str(peer_id), "?", 0))  # still revoked: fail closed
    return sorted(out, key=lambda r: r.peer_id)


def is_revoked(doc: Doc[Any], peer_id: str) -> bool:
    return peer_id in revoked_map(doc)


def revoke(doc: Doc[Any], peer_id: str, by: str, now_ms: int) -> bytes | None:
    """Revoke ``peer_id``; the update to persist and send, None if it already was."""
    revoked = revoked_map(doc)
    if peer_id in revoked:
        return None
    before = doc.get_state()
    with doc.transaction(origin="local"):
        revoked[peer_id] = json.dumps({"by": by, "ms": now_ms})
    return doc.get_update(before)
