"""All items of one workspace replica, keyed by item key (sans-I/O).

The caller reads files and the store and executes what comes back: every
method returns the update to persist (and, later, to send to peers) instead
of writing it anywhere itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from worksync_p2p.core import codec
from worksync_p2p.core.itemdoc import ItemDoc, Writer, genesis_update


@dataclass(frozen=True)
class Ingested:
    key: str
    update: bytes | None
    created: bool


class Repo:
    def __init__(self, writer: Writer, client_id: int) -> None:
        self.writer = writer
        self.client_id = client_id
        self.docs: dict[str, ItemDoc] = {}

    def load(self, key: str, state: bytes) -> ItemDoc:
        """Restore an item from its stored state."""
        item = ItemDoc.new(self.client_id)
        item.doc.apply_update(state)
        self.docs[key] = item
        return item

    def get(self, key: str) -> ItemDoc | None:
        return self.docs.get(key)

    def ingest(self, key: str, relpath: str, parsed: codec.ParsedItem, now_ms: int) -> Ingested:
        """Make the item stand for a file's content: seed it or diff into it."""
        self.writer.now_ms = now_ms
        item = self.docs.get(key)
        if item is None or item.active_genesis() is None:
            update = genesis_update(key, parsed, relpath)
            item = item or ItemDoc.new(self.client_id)
            item.doc.apply_update(update)
            self.docs[key] = item
            return Ingested(key, update, created=True)
        return Ingested(key, item.ingest(parsed, relpath, self.writer), created=False)

    def delete(self, key: str, now_ms: int) -> bytes | None:
        item = self.docs.get(key)
        if item is None:
            return None
        self.writer.now_ms = now_ms
        return item.delete(self.writer)
