"""All items of one workspace replica, keyed by item key (sans-I/O).

The caller reads files and the store and executes what comes back: every
method returns the update to persist (and to send to peers) instead of writing
it anywhere itself.

A live pycrdt document costs about 18 KiB, its encoded state about 4 KB, so
10,000 live documents would not fit the 150 MB budget. Items are kept encoded
(after a restart, only in the store until first used: ``load_from``) and
brought to life on use; at most ``cache_size`` stay live, the least
recently used being encoded again. Re-creating a document with the same
client id continues that client's clock, so no id is ever reused for two
different operations.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from worksync_p2p.core import codec, fields, yupdate
from worksync_p2p.core import digest as dg
from worksync_p2p.core.itemdoc import ItemDoc, Writer, genesis_update, own_cells

DEFAULT_CACHE_SIZE = 512
CLIENT_ID_BITS = 32


@dataclass(frozen=True)
class Ingested:
    key: str
    update: bytes | None
    created: bool
    file_state: bytes | None = None
    """After a merge from a base: the state the file stands for (base plus the save)."""


class Repo:
    def __init__(
        self,
        writer: Writer,
        client_id: int,
        cache_size: int = DEFAULT_CACHE_SIZE,
        rng: random.Random | None = None,
    ) -> None:
        assert cache_size > 0
        self.writer = writer
        self.client_id = client_id
        self.rng = rng or random.Random(client_id)
        self.cache_size = cache_size
        self._encoded: dict[str, bytes] = {}
        self._live: OrderedDict[str, ItemDoc] = OrderedDict()
        self._stored: set[str] = set()
        """Items only the store holds so far (:meth:`load_from`)."""
        self._fetch: Callable[[str], bytes | None] = lambda _key: None
        self.on_waiting: Callable[[str, bytes], None] | None = None
        """Told ``(key, what waits)`` when a document brought to life from a stored
        state holds structs still waiting for ones they depend on (an update
        stored as it came, before its dependency: ``yupdate.waiting``). Pending
        structs are not part of a document's encoded state, so whoever keeps
        what waits across evictions (the node) must learn of it here after a
        restart, or the next eviction would drop them from memory."""

    def __contains__(self, key: str) -> bool:
        return key in self._live or key in self._encoded or key in self._stored

    def __len__(self) -> int:
        return len(self._live) + len(self._encoded) + len(self._stored)

    def item_keys(self) -> Iterator[str]:
        yield from sorted([*self._live, *self._encoded, *self._stored])

    def load(self, key: str, state: bytes) -> None:
        """Restore an item from its stored state (kept encoded until used)."""
        self._live.pop(key, None)
        self._stored.discard(key)
        self._encoded[key] = state

    def load_from(self, keys: Iterable[str], fetch: Callable[[str], bytes | None]) -> None:
        """Restore the items a store holds, each read (``fetch(key)``: its state, as
        ``load`` takes it) when first used.

        A restart of 10,000 items read 40 MB of states before it could serve a
        peer (a sixth of the time to the peer joining), and a peer in sync asks
        for none of them. Every change to an item goes through it here first,
        so what ``fetch`` returns later is still what it held at the restart.
        """
        self._fetch = fetch
        self._stored.update(k for k in keys if k not in self._live and k not in self._encoded)

    def _take_stored(self, key: str) -> bytes | None:
        """The state of an item only the store held (kept encoded from now on)."""
        if key not in self._stored:
            return None
        self._stored.discard(key)
        state = self._fetch(key)
        if state is not None:
            self._encoded[key] = state
        return state

    def get(self, key: str) -> ItemDoc | None:
        item = self._live.get(key)
        if item is not None:
            self._live.move_to_end(key)
            return item
        self._take_stored(key)  # after a restart: into ``_encoded``, taken from there
        state = self._encoded.pop(key, None)
        if state is None:
            return None
        item = ItemDoc.new(self.client_id)
        item.doc.apply_update(state)
        if self.on_waiting is not None:
            rest = yupdate.waiting(item.doc, state)
            if rest is not None:
                self.on_waiting(key, rest)
        self._keep(key, item)
        return item

    def ensure(self, key: str) -> ItemDoc:
        """The document for ``key``, created empty if there is none yet."""
        item = self.get(key)
        if item is None:
            item = ItemDoc.new(self.client_id)
            self._keep(key, item)
        return item

    def adopt(self, key: str, update: bytes) -> ItemDoc:
        """A new item that arrived from a peer; raises ValueError if the update is garbage."""
        item = ItemDoc.new(self.client_id)
        item.doc.apply_update(update)
        self._keep(key, item)
        return item

    def adopt_read(
        self, key: str, update: bytes, text: str | None, path: str | None, digest: bytes
    ) -> ItemDoc:
        """A new item from a peer whose update was read elsewhere: ``text``,
        ``path`` and ``digest`` are its render, path and digest, and a new
        document encodes it back byte for byte (``itemdoc.read_new``). Its
        document is made on first use (``ItemDoc.asleep``)."""
        item = ItemDoc.asleep(self.client_id, update, text, path, digest)
        self._keep(key, item)
        return item

    def digest(self, key: str) -> bytes | None:
        """The item's digest (``digest.item_hash`` of its encoded state)."""
        item = self._live.get(key)
        if item is not None:
            return item.digest()
        state = self.encoded(key)
        return None if state is None else dg.item_hash(state)

    def encoded(self, key: str) -> bytes | None:
        """The item's full state as one update, without bringing it to life."""
        item = self._live.get(key)
        if item is not None:
            return item.encoded()
        state = self._encoded.get(key)
        return state if state is not None else self._take_stored(key)

    def _keep(self, key: str, item: ItemDoc) -> None:
        self._live[key] = item
        while len(self._live) > self.cache_size:
            old_key, old = self._live.popitem(last=False)
            self._encoded[old_key] = old.encoded()

    def ingest(
        self,
        key: str,
        relpath: str,
        parsed: codec.ParsedItem,
        now_ms: int,
        *,
        seen: bytes | None = None,
    ) -> Ingested:
        """Make the item stand for a file's content: seed it or diff into it.

        ``seen``: the state whose field values the file last showed, when values
        that lost to them arrived since without a write (``ItemDoc.ingest``).
        """
        self.writer.now_ms = now_ms
        item = self.get(key)
        if item is None or item.active_genesis() is None:
            update = genesis_update(key, parsed, relpath)
            if item is None:
                item = ItemDoc.new(self.client_id)
                self._keep(key, item)
            item.doc.apply_update(update)
            return Ingested(key, update, created=True)
        return Ingested(key, item.ingest(parsed, relpath, self.writer, seen=seen), created=False)

    def ingest_from(
        self,
        key: str,
        relpath: str,
        parsed: codec.ParsedItem,
        now_ms: int,
        base: bytes,
        *,
        seen: bytes | None = None,
    ) -> Ingested:
        """Ingest a file that was saved on top of ``base``, an older state of the item.

        The save is diffed against ``base`` in a fork and the fork's operations
        merged in, so changes that arrived since ``base`` survive (a three-way
        merge done by the CRDT). The fork gets a fresh client id: our own id may
        have written operations after ``base`` that the fork does not know.
        """
        item = self.get(key)
        if item is None:
            return self.ingest(key, relpath, parsed, now_ms)
        fork = ItemDoc.new(self.rng.getrandbits(CLIENT_ID_BITS))
        fork.doc.apply_update(base)
        self.writer.now_ms = now_ms
        writer = self._fork_writer(item, fork)
        update = fork.ingest(parsed, relpath, writer, seen=seen)
        if (
            update is not None
            and writer is self.writer
            and _sets_would_vanish(item, fork, update, writer.peer)
        ):
            # Our cells look the same as at the base, but a key of ours was set and
            # deleted since (a value of ours that a peer replaced): the fork's set of
            # that key is concurrent with the deleted one, and Yjs may keep the deleted
            # one by client id. The value vanished with no conflict record (B78). The
            # fork writes under a name of its own instead, as when our cells differ.
            fork = ItemDoc.new(self.rng.getrandbits(CLIENT_ID_BITS))
            fork.doc.apply_update(base)
            update = fork.ingest(parsed, relpath, self._own_name(fork), seen=seen)
        if update is not None:
            item.doc.apply_update(update)
        return Ingested(key, update, created=False, file_state=fork.doc.get_update())

    def _fork_writer(self, item: ItemDoc, fork: ItemDoc) -> Writer:
        """Who a fork of ``item`` writes as: us, unless that would set one of our cells twice.

        Cells are keyed by writer (``title|<peer>``), and Yjs keeps one of two
        concurrent sets of a key by client id, not by time. When we wrote cells
        of the item since the fork's base (a save of another file of the item,
        say the user's copy of a peer-renamed file), the fork's writes of the
        same cells are such concurrent sets: one of the two values would vanish
        without a conflict (CI seed 21). The fork then writes under a name of
        its own, so both values stay and the later one wins.
        """
        if own_cells(item, self.writer.peer) == own_cells(fork, self.writer.peer):
            return self.writer
        return self._own_name(fork)

    def _own_name(self, fork: ItemDoc) -> Writer:
        name = f"{self.writer.peer}~{fork.doc.client_id:08x}"
        return Writer(name, self.writer.hlc, self.writer.now_ms)

    def hides_values(self, key: str, seen: bytes) -> bool:
        """Whether the item holds field values a file showing ``seen`` never showed."""
        item = self.get(key)
        if item is None:
            return False
        then = ItemDoc.new(0)
        then.doc.apply_update(seen)
        if then.field_cells() == item.field_cells():
            return False  # the usual case, read in one call: no field changed at all
        return bool(fields.unseen(item.field_index(), then.field_index()))

    def delete_from(self, key: str, base: bytes, now_ms: int) -> bytes | None:
        """Delete the item as of ``base``: changes since then are concurrent and win.

        They win by their own ``rev`` cells, which the delete has not seen. Not when a
        writer's later edit reached us before its earlier one (Yjs orders the operations
        of one client id, and every fork has its own): the later edit's cell replaced
        the earlier's, and a delete made as of a state holding it saw that cell, not
        the earlier edit's text or values. Such a delete, which would leave the item
        dead though it holds content ``base`` lacks, is not made: the edit wins (B71).
        """
        item = self.get(key)
        if item is None:
            return None
        fork = ItemDoc.new(self.rng.getrandbits(CLIENT_ID_BITS))
        fork.doc.apply_update(base)
        shown = (fork.head_body(), dict(fork.field_cells()))
        self.writer.now_ms = now_ms
        update = fork.delete(self._fork_writer(item, fork))
        if update is None:
            return None
        if (
            item.alive()
            and (item.head_body(), dict(item.field_cells())) != shown
            and not _alive_with(item, update)
        ):
            return None
        item.doc.apply_update(update)
        return update

    def delete(self, key: str, now_ms: int) -> bytes | None:
        item = self.get(key)
        if item is None:
            return None
        self.writer.now_ms = now_ms
        return item.delete(self.writer)


def _alive_with(item: ItemDoc, update: bytes) -> bool:
    """Whether ``item`` would still be alive with ``update`` applied (tried on a copy)."""
    trial = ItemDoc.new(0)
    trial.doc.apply_update(item.encoded())
    trial.doc.apply_update(update)
    return trial.alive()


def _sets_would_vanish(item: ItemDoc, fork: ItemDoc, update: bytes, peer: str) -> bool:
    """Whether merging ``update`` (the fork's, written as ``peer``) into ``item`` would lose
    a cell of ``peer``'s the fork holds: tried on a copy of ``item``."""
    trial = ItemDoc.new(0)
    trial.doc.apply_update(item.doc.get_update())
    trial.doc.apply_update(update)
    merged = own_cells(trial, peer)
    return any(merged.get(key) != value for key, value in own_cells(fork, peer).items())
