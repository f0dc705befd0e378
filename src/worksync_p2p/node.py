"""The asyncio driver: owns the tasks, feeds file changes to the core, executes effects.

``LocalNode`` is the replica itself and stays synchronous: it takes its file
system, store, clock and randomness from the caller, so the simulations run
exactly this code over fakes. ``running()`` adds the asyncio parts around it:
the watcher, the bridge's timers, the event and control sockets, and peering.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worksync_p2p import items
from worksync_p2p.adapters import files, renderpool
from worksync_p2p.adapters.eventsock import EventBus, serve_events
from worksync_p2p.adapters.peering import Peering
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.adapters.watcher import Watcher
from worksync_p2p.core import bridge as br
from worksync_p2p.core import codec, members, naming, yupdate
from worksync_p2p.core.digest import DigestIndex
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.core.syncproto import RepoItems
from worksync_p2p.daemonlock import DaemonLock
from worksync_p2p.identity import workspace_tag
from worksync_p2p.ports import FileRecord, FileSystem, Stat, Store, WriteOutcome
from worksync_p2p.workspace import Config, Workspace, init

if TYPE_CHECKING:  # imported when mDNS is on: zeroconf is a tenth of a start-up
    from worksync_p2p.adapters.mdns import Discovery

log = logging.getLogger(__name__)

HLC_META = "hlc"
CLOCK_SAVE_EVERY_MS = 10_000
PEERS_META = "peers"
BASES_META = "bridge-bases"
SEEN_META = "bridge-seen"
DIGESTS_META = "digests"
STRAYS_META = "bridge-strays"
DEPARTED_META = "bridge-departed"
LEFTOVERS_META = "bridge-leftovers"
RETURNING_META = "bridge-returning"
REVIVED_META = "bridge-revived"
CLIENT_ID_BITS = 32
"""A fresh Yjs client id per run, as Yjs clients do: reusing one after a crash
that lost its last update would make two different operations share an id."""
MAX_WRITE_RETRIES = 3
WATCH_PROBE = "watch-probe"
PROBE_TRIES = 100
PROBE_INTERVAL_S = 0.05
POOL_MIN_ITEMS = 16
"""Batches of fewer new items are rendered in the daemon: not worth a round trip."""
UNKNOWN_STAT = Stat(-1, -1)
"""A record's stat that no file matches: start-up reads that file again."""
FIRST_ROUND_WAIT_S = 0.3
"""How long start-up lets the static peers' first sync rounds go before the watcher."""


@dataclass(frozen=True)
class Started:
    """What ``up`` reports once it is ready."""

    root: Path
    peer_id: str
    items: int
    bad_files: int
    events_socket: Path | None
    address: str | None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LocalNode:
    """One workspace replica: files <-> documents <-> store, driven by calls."""

    def __init__(
        self,
        workspace: Workspace,
        config: Config,
        store: Store,
        bus: EventBus | None = None,
        *,
        fs: FileSystem | None = None,
        clock: Callable[[], int] = now_ms,
        rng: random.Random | None = None,
        peer_id: str | None = None,
    ) -> None:
        """Real files, wall clock and OS randomness unless a simulation passes its own."""
        self.workspace = workspace
        self.root = workspace.root
        self._root_prefix = os.path.join(self.root, "")  # the root, ending in a separator
        self.config = config
        self.store = store
        self.bus = bus or EventBus()
        self.fs: FileSystem = fs or files.RealFiles(self.root)
        self.clock = clock
        self.peer_id = peer_id or workspace.load_identity().peer_id
        hlc = Hlc(self.peer_id, *_load_hlc(store))
        rng = rng or random.Random(random.SystemRandom().getrandbits(64))
        client_id = rng.getrandbits(CLIENT_ID_BITS)
        self.repo = Repo(Writer(self.peer_id, hlc, 0), client_id, rng=rng)
        self.repo.on_waiting = self._waited_since_the_stop
        self.bridge = br.Bridge(self.repo, max_item_bytes=config.max_item_bytes)
        self._stats: dict[str, Stat] = {}
        self._recorded: set[str] | None = None
        """Paths whose file records were stored or dropped while a removal ran (its refusal
        runs the merge of the saved file at once, see ``_execute_all``)."""
        self._ahead = renderpool.Ahead()
        self.events_socket: Path | None = None
        self.ready = asyncio.Event()
        self._on_local_update: Callable[[str, bytes], None] | None = None
        self.address: str | None = None
        self.peering: Peering | None = None
        self.known_peers: dict[str, dict[str, Any]] = _load_peers(store)
        self.bus.command = self.command
        self._items: RepoItems | None = None
        self._records: dict[str, FileRecord] = {}
        self._clock_saved_ms = 0
        self._saved: dict[str, dict[str, Any]] = {}  # bridge state as last stored, by meta name
        self._empty_stats: dict[str, Stat | None] = {}
        self._unread_at_start: set[str] = set()
        """Files half-way through an in-place save at start-up: whether a stored base is
        stale (``_landed_before_a_power_cut``) is asked when their content is read."""
        self._looked: dict[str, Stat | None] = {}  # what reconcile saw, until catch_up
        # Local updates waiting for their batch to be durable before peers get them.
        self._outbox: list[tuple[str, bytes]] | None = None

    def started(self) -> Started:
        count = len(self.bridge.disk)
        return Started(
            self.root, self.peer_id, count, len(self.bridge.bad), self.events_socket, self.address
        )

    def receive(self, key: str, update: bytes, origin: str) -> None:
        """A peer's update for one item: apply, persist, repair, write the file.

        Raises ValueError for an update that does not decode; nothing is kept then.
        The update is durable (power cuts included) before its file is written.
        """
        with self._durably():
            self._receive(key, update, origin)

    def _receive(self, key: str, update: bytes, origin: str) -> None:
        if self._apply_and_store(key, update):
            self.execute(self.bridge.on_remote(key, origin))
        # Also for an update that waits (nothing to write yet): ``before_remote`` kept
        # the state the file shows as its base, and a stop before the rest came lost it.
        # After the restart the file, moved meanwhile, was merged from the stored
        # document, whose values it never showed: its own value replaced a peer's,
        # seen and gone with no conflict (soak seed 10455). As ``_render_remote`` does.
        self._save_bases()

    def _apply_and_store(self, key: str, update: bytes) -> bool:
        """A peer's update applied and stored; whether its item's file may need writing."""
        item = self.repo.get(key)
        if item is not None and yupdate.holds(item.doc, update):
            return False  # a copy forwarded by another peer: nothing to apply, store or write
        self.bridge.before_remote(key)
        held = self.items.waiting.get(key)
        # What waited goes in again with the update, as one: a document rebuilt
        # from its encoded state lost it, and Yjs, retrying what waits once per
        # update, can leave a struct waiting whose dependencies all came.
        applied = update if held is None else yupdate.joined(held, update)
        if item is None:
            item = self.repo.adopt(key, applied)
        else:
            repair = item.apply_remote(applied)
            if repair is not None:
                self._local_update(key, repair)
        self.store.append(key, update)
        if key == members.MEMBERS_KEY:
            if self.peering is not None:
                self.peering.drop_revoked(self.is_allowed)
            return False
        return not self._waits(key, item, applied)

    def _waited_since_the_stop(self, key: str, rest: bytes) -> None:
        """An item brought back from the store with structs still waiting (stored as
        they came, before what they depend on): kept as ``_waits`` keeps them, so the
        sessions ask for the item and a later update is applied joined with them."""
        self.items.waiting.setdefault(key, rest)

    def _waits(self, key: str, item: ItemDoc, applied: bytes) -> bool:
        """Whether ``item`` reads deleted only because an update waits for one it
        depends on: the bridge is not told then (no file removed, no event).

        A writer's second edit can arrive first (a reconnect, a third peer's
        copy, a lost frame): Yjs applies its delete set and holds its insertions
        back, so the old ``rev`` cell is gone and the new one waits. What waits
        is kept (``RepoItems.waiting``) and the sessions ask their peers for the
        item (``PeerSync.tick``). A state that still reads alive is rendered as
        before: holding every partial state back changed the schedules enough
        to expose older merge bugs in the simulations (seeds 11, 81).
        """
        # A document that encodes to exactly the update holds all of it: nothing
        # waits. That is every new item of a first sync, and the encoding is kept
        # for the digest refresh that follows, where diffing the update against
        # the state parsed it once more per item.
        rest = None if item.encoded() == applied else yupdate.waiting(item.doc, applied)
        if rest is None:
            self.items.waiting.pop(key, None)
            return False
        self.items.waiting[key] = rest
        if item.alive():
            return False
        log.info("item %s: reads deleted until an update it waits for arrives", key)
        return True

    def _receive_held(self, updates: list[tuple[str, bytes]], origin: str) -> None:
        """Peers' updates one by one as ``receive``, but stored first and synced once.

        A second update for a key renders the ones before it first: the
        bridge takes one peer update per item between its looks at the file.
        Raises ValueError as ``receive`` does, after keeping the good ones.
        """
        if not updates:
            return
        error: ValueError | None = None
        with self._durably():
            touched: dict[str, None] = {}  # in order of arrival
            for key, update in updates:
                if key in touched:
                    self._render_remote(list(touched), origin)
                    touched.clear()
                try:
                    if self._apply_and_store(key, update):
                        touched[key] = None
                except ValueError as bad:
                    error = bad
                    break
            self._render_remote(list(touched), origin)
        if error is not None:
            raise error

    def _render_remote(self, keys: list[str], origin: str) -> None:
        self._sync_before_files()  # one fsync for every file below
        for key in keys:
            self.execute(self.bridge.on_remote(key, origin))
        self._save_bases()

    def receive_many(self, updates: Sequence[tuple[str, bytes]], origin: str) -> None:
        """Many peers' updates (a first sync's batch): as ``receive`` for each, but
        items new to us are adopted in one transaction and their files written
        as one batch.

        Durability, in this order (each step durable before any of the next shows):

        1. the updates, in one commit, fsynced (``store.sync``) while the
           unnamed temp files of step 2 are: nothing the store had is lost,
           and no file can outlive the update it renders;
        2. the files, whole, under their names (``files.write_new_files``:
           temp files, one flush, then links, then the folders fsynced);
        3. their file records, in one commit.

        A crash after 1 leaves items without files: start-up renders them
        (``reconcile`` writes every item that has no file). A crash after 2
        leaves whole files without records: start-up reads each, finds it equal
        to its item, and records it. A record is written only for a file known
        to be on disk whole, so no crash can make start-up take a partial or
        empty file for the user's edit. Updates to items we already hold, and
        the membership document, take the one-by-one path of ``receive``.

        Raises ValueError for an update that does not decode, after keeping
        the good ones that came before it.
        """
        fresh: dict[str, bytes] = {}
        held: list[tuple[str, bytes]] = []
        later: list[tuple[str, bytes]] = []
        batched = self._batched()
        for key, update in updates:
            if key in fresh:
                later.append((key, update))  # after the first one is adopted
            elif batched and self._is_new(key):
                fresh[key] = update
            else:
                held.append((key, update))
        self._receive_held(held, origin)
        error = self._adopt_and_write(list(fresh.items()), origin) if fresh else None
        self._receive_held(later, origin)
        if error is not None:
            raise error

    def _batched(self) -> bool:
        return isinstance(self.fs, files.RealFiles) and isinstance(self.store, SqliteStore)

    def _is_new(self, key: str) -> bool:
        return key not in self.repo and key != members.MEMBERS_KEY

    def prefetch(self, updates: Sequence[tuple[str, bytes]]) -> None:
        """Have the workers render peers' updates of new items that are about to
        be received (``receive_many`` takes their renders: ``renderpool.Ahead``)."""
        if not self._batched():
            return
        new = [update for key, update in updates if self._is_new(key)]
        pool = renderpool.shared() if len(new) >= POOL_MIN_ITEMS else None
        if pool is not None:
            self._ahead.ask(pool, new, POOL_MIN_ITEMS)

    def _adopt_and_write(self, fresh: list[tuple[str, bytes]], origin: str) -> ValueError | None:
        assert isinstance(self.store, SqliteStore)
        adopted: list[tuple[str, bytes]] = []
        error: ValueError | None = None
        renders = self._renders([update for _, update in fresh])
        items: list[ItemDoc] = []
        # Committed here, made durable while the files' own fsyncs run (the
        # files get their names only after both: ``_write_new``).
        with self.store.batch():
            for key, update in fresh:
                try:
                    items.append(self._adopt(key, update, renders.get(update)))
                except ValueError as bad:
                    error = bad
                    break
                adopted.append((key, update))
            self.store.append_many(adopted)
        batch: list[list[br.Effect]] = []
        for item, (key, update) in zip(items, adopted, strict=True):
            if self._waits(key, item, update):
                continue
            effects = self.bridge.on_remote(key, origin)
            if _simple_new_write(effects):
                batch.append(effects)
            else:
                self.execute(effects)
        if batch:
            self._write_new(batch)
        self.store.sync()  # durable on return, written files or not (a no-op after them)
        return error

    def _renders(self, updates: list[bytes]) -> dict[bytes, renderpool.Rendered | None]:
        """The workers' renders of a batch of new items, waited for: most were asked
        for a turn before (``prefetch``) and are done, and with a render at hand
        an item is adopted without making its document (``_adopt``)."""
        rest = [u for u in updates if not self._ahead.asked(u)]
        pool = renderpool.shared() if len(rest) >= POOL_MIN_ITEMS else None
        pending = pool.submit(rest) if pool is not None else None
        renders = self._ahead.take(updates)
        if pending is not None:
            renders.update(zip(rest, pending.results() or [], strict=False))
        return renders

    def _adopt(self, key: str, update: bytes, rendered: renderpool.Rendered | None) -> ItemDoc:
        """A new item; raises ValueError if the update is garbage (a worker that
        could not decode it said None, and the apply here raises)."""
        if rendered is not None and rendered.digest is not None:
            return self.repo.adopt_read(key, update, rendered.text, rendered.path, rendered.digest)
        item = self.repo.adopt(key, update)
        if rendered is not None:
            item.take_render(update, rendered.text, rendered.path)
        return item

    def _write_new(self, batch: list[list[br.Effect]]) -> None:
        """Steps 2 and 3 of ``receive_many``; a refused write takes write_if's way."""
        assert isinstance(self.fs, files.RealFiles)
        writes = [effects[0] for effects in batch]
        assert all(isinstance(w, br.WriteFile) for w in writes)
        texts = [(w.relpath, w.text) for w in writes if isinstance(w, br.WriteFile)]
        # The store's sync (the batch's updates, and any repair stored since)
        # runs while the unnamed files are fsynced, before any gets its name.
        outcomes = self.fs.write_new_many(texts, self.store.sync)
        with self._durably():
            records: list[tuple[str, FileRecord]] = []  # stored at once, in order
            for effects, (outcome, stat) in zip(batch, outcomes, strict=True):
                write, tracked = effects[0], effects[1]
                assert isinstance(write, br.WriteFile)
                assert isinstance(tracked, br.Tracked)
                if outcome is WriteOutcome.WRITTEN and stat is not None:
                    # _settle and _track for a file whose stat the writer told.
                    self.bridge.wrote(write.key, write.relpath, self.clock())
                    self._stats.pop(tracked.relpath, None)
                    record = FileRecord(tracked.key, tracked.digest, stat.size, stat.mtime_ns)
                    records.append((tracked.relpath, record))
                    self._execute_all(effects[2:], 0)
                    continue
                self.store.put_files(records)  # before anything the other way stores
                records = []
                # A refused write (a file took the name first) goes write_if's way.
                if self._settle(write, outcome, 0, stat):
                    self._execute_all(effects[1:], 0)
            self.store.put_files(records)
            self._save_bases()

    # -- membership --------------------------------------------------------

    def is_allowed(self, peer_id: str) -> bool:
        return not members.is_revoked(self.repo.ensure(members.MEMBERS_KEY).doc, peer_id)

    def revoke(self, peer_id: str) -> bool:
        """Revoke a peer everywhere; False when it already was."""
        update = members.revoke(
            self.repo.ensure(members.MEMBERS_KEY).doc, peer_id, self.peer_id, self.clock()
        )
        if update is None:
            return False
        self._local_update(members.MEMBERS_KEY, update)
        if self.peering is not None:
            self.peering.drop_revoked(self.is_allowed)
        return True

    def revocations(self) -> list[members.Revocation]:
        return members.revocations(self.repo.ensure(members.MEMBERS_KEY).doc)

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """Requests from the local CLI over the control socket."""
        match request.get("cmd"):
            case "revoke":
                peer_id = str(request.get("peer", ""))
                return {"peer": peer_id, "revoked": True, "new": self.revoke(peer_id)}
            case "peers":
                return {"peers": self.peer_book()}
            case other:
                return {"error": f"unknown command {other!r}"}

    def peer_book(self) -> list[dict[str, Any]]:
        links = self.peering.links if self.peering is not None else {}
        revoked = {r.peer_id for r in self.revocations()}
        book = dict(self.known_peers)
        for peer_id in revoked:
            book.setdefault(peer_id, {"address": "", "last_seen_ms": 0})
        return [
            {
                "peer": peer_id,
                "address": info.get("address", ""),
                "last_seen_ms": info.get("last_seen_ms", 0),
                "connected": peer_id in links,
                "revoked": peer_id in revoked,
            }
            for peer_id, info in sorted(book.items())
        ]

    def saw_peer(self, peer_id: str, address: str) -> None:
        self.known_peers[peer_id] = {"address": address, "last_seen_ms": time.time_ns() // 10**6}
        self.store.set_meta(PEERS_META, json.dumps(self.known_peers).encode())

    @property
    def on_local_update(self) -> Callable[[str, bytes], None] | None:
        """Where local updates go once durable (peering's broadcast); None: nowhere yet."""
        return self._on_local_update

    @on_local_update.setter
    def on_local_update(self, send: Callable[[str, bytes], None] | None) -> None:
        # Peers about to be reached read the documents in their first sync,
        # local updates stored unsent so far included: durable before that.
        if send is not None:
            self.store.sync()
        self._on_local_update = send

    def _local_update(self, key: str, update: bytes) -> None:
        self.store.append(key, update)
        if self.on_local_update is None:
            return
        if self._outbox is not None:
            self._outbox.append((key, update))
            return
        self.store.sync()
        self.on_local_update(key, update)

    @contextlib.contextmanager
    def _durably(self) -> Iterator[None]:
        """A store batch whose local updates reach peers only once it is durable.

        An update a peer holds but our store lost in a power cut would come
        back from the peer as someone else's, concurrent with what we write
        next under the same name; so it is sent only after one ``sync`` (an
        fsync of the WAL) at the end of the batch. Nested calls join the
        outermost one.
        """
        if self._outbox is not None:
            with self.store.batch():
                yield
            return
        outbox: list[tuple[str, bytes]] = []
        self._outbox = outbox
        try:
            with self.store.batch():
                yield
        finally:
            self._outbox = None
        if outbox and self.on_local_update is not None:
            self.store.sync()
            for key, update in outbox:
                self.on_local_update(key, update)

    @property
    def items(self) -> RepoItems:
        if self._items is None:
            self._items = RepoItems(self.repo)
        return self._items

    # -- start-up ----------------------------------------------------------

    def load(self) -> None:
        self.repo.load_from(self.store.keys(), self.store.load)
        self.bridge.base.update(_load_bases(self.store, BASES_META))
        self.bridge.seen.update(_load_bases(self.store, SEEN_META))
        self.bridge.strays.update(_load_pairs(self.store, STRAYS_META))
        self.bridge.departed.update(_load_pairs(self.store, DEPARTED_META))
        self.bridge.revived.update(_load_pairs(self.store, REVIVED_META))
        self.bridge.leftovers.update(_load_leftovers(self.store))
        # The grace starts again: a save half-way at the stop may land only now.
        due = self.clock() + self.bridge.delete_grace_ms
        self.bridge.returning.update(_load_returning(self.store, due))
        self._saved = {meta: dict(state) for meta, state, _ in self._bridge_state()}
        self._records = self.store.load_files()
        for relpath, record in self._records.items():
            self.bridge.disk.set(relpath, br.FileRecord(record.key, record.digest))

    def leftover_is_a_save(self, relpath: str, data: bytes | None, current: bytes | None) -> bool:
        """Whether a temp file a killed daemon left holds a save found nowhere else.

        Such a file holds our render (killed before moving it in), the file's
        old content (a removal killed before its check), or, after a swap
        killed before its check, the save the swap took out of ``relpath``.
        That save is put back only over a file we wrote: a file saved since
        is newer than it.
        """
        if data is None:
            return False
        known = self._known_digests(relpath, data)
        if br.content_hash(data) in known:
            return False
        return current is None or br.content_hash(current) in known

    def _known_digests(self, relpath: str, data: bytes) -> set[str]:
        """What the node itself knows ``relpath`` to hold: its record and renders."""
        record = self.bridge.disk.get(relpath)
        keys = {record.key} if record is not None else set()
        with contextlib.suppress(codec.ItemError):
            keys.add(naming.item_key(codec.parse(data, relpath).fields, relpath))
        known = {record.digest} if record is not None else set()
        for key in keys:
            item = self.repo.get(key)
            text = item.render() if item is not None else None
            if text is not None:
                known.add(br.content_hash(text.encode()))
        return known

    def reconcile(self) -> int:
        """Bring documents and folder together after a stop (edits, moves, deletes)."""
        present = self.fs.list_items()
        now = self.clock()
        # Files gone while we were stopped wait as pending deletes first, so a
        # file that moved is found as a rename when its new path is read.
        for relpath in sorted(set(self._records) - set(present)):
            self.execute(self.bridge.on_file(relpath, None, now))
        changed = []
        for relpath in present:
            stat = self.fs.stat(relpath)
            self._looked[relpath] = stat
            record = self._records.get(relpath)
            if stat is None or record is None or not stat.matches(record):
                changed.append(relpath)
        for relpath in self._reading_order(changed):
            self._landed_before_a_power_cut(relpath)
            self.feed(relpath)
        # The deletes wait their grace, as at any other time (the timer decides them):
        # a file missing at start-up may be half-way through a delete-and-recreate save.
        # Rendered again: items without a file, and items with a stored base, whose
        # file a kill may have left behind the store (``_sync_before_files``); a
        # save made on such a file was fed above and merged from that base.
        for key in list(self.repo.item_keys()):
            if self.bridge.path_of(key) is None:
                self.execute(self.bridge.restore(key, "store"))
            elif key in self.bridge.base:
                self.execute(self.bridge.on_remote(key, "store"))
        self.save_clock()
        return len(present) - len(self.bridge.bad)

    def _landed_before_a_power_cut(self, relpath: str, data: bytes | None = None) -> None:
        """Drop a stored base that a power cut made stale after the write it was kept for.

        The base is durable before the write (``_sync_before_files``), but the
        write's record and the base's removal are not: a power cut can keep
        the file and lose both, and the user may have saved on top of it since.
        A file that shows the write's changes was written; merged from the
        stale base, those changes would come in twice. One that shows neither
        more of them nor less (a line the write added and the user replaced)
        keeps the base: wrongly kept, a value comes back as a conflict; wrongly
        dropped, the peer's change would be undone unseen.
        """
        if not self.bridge.base:
            return  # the usual start-up: no file was behind its document
        if data is None:
            data = self.fs.read(relpath, self.config.max_item_bytes)
        if data is None:
            return
        if not data:
            # Seen at the truncate of an in-place save (the user's move of the file,
            # say): asked when the save is read. Not asked, the base stayed, and the
            # save merged from it held the write's lines twice (B67).
            self._unread_at_start.add(relpath)
            return
        try:
            key = naming.item_key(codec.parse(data, relpath).fields, relpath)
        except codec.ItemError:
            return
        base = self.bridge.base.get(key)
        item = self.repo.get(key)
        if base is None or item is None:
            return  # (at any path: the write may be the move of a peer's rename)
        before = ItemDoc.new(0)
        before.doc.apply_update(base)
        if _shows_the_change(data.decode(errors="replace"), before.render(), item.render()):
            self.bridge.wrote(key, relpath, self.clock())

    def catch_up(self) -> None:
        """Take in what was saved between ``reconcile`` and the watcher's start.

        The watcher reports only changes made after it set up its watches, so a
        file saved after ``reconcile`` looked at it would wait for its next save.
        Called once the watches are set: a file whose size or mtime moved since
        ``reconcile`` saw it, a new one or a vanished one is fed again (feeding
        an unchanged file is a no-op).
        """
        looked, self._looked = self._looked, {}
        present = self.fs.list_items()
        changed = [relpath for relpath in present if self.fs.stat(relpath) != looked.get(relpath)]
        gone = set(looked) - set(present)
        if changed or gone:
            self.on_relpaths([*changed, *gone])

    # -- inputs ------------------------------------------------------------

    def feed(self, relpath: str, *, reported: bool = False) -> None:
        """Read a file (or find it gone) and hand it to the bridge.

        ``reported``: the watcher reported the path (see ``Bridge.on_file``)."""
        stat = self.fs.stat(relpath)
        data = self.fs.read(relpath, self.config.max_item_bytes) if stat else None
        if stat is not None:
            self._stats[relpath] = stat
        if data is not None and self.bridge.shows_its_record(relpath, data):
            self._empty_stats.pop(relpath, None)  # as _check_emptied_again does
            return  # nothing to do: skip the store's transaction and the bridge
        self._check_emptied_again(relpath, data, stat)
        if data and relpath in self._unread_at_start:
            self._unread_at_start.discard(relpath)
            self._landed_before_a_power_cut(relpath, data)
        with self._durably():
            self.execute(self.bridge.on_file(relpath, data, self.clock(), reported=reported))

    def _check_emptied_again(self, relpath: str, data: bytes | None, stat: Stat | None) -> None:
        """An empty file must have stayed the same empty file for the whole grace.

        Two in-place saves in a row: the file is empty at the first truncate,
        full in between (perhaps unseen by the watcher yet) and empty again at
        the second truncate. The reread at the end of the first grace must not
        take that for a file the user emptied.
        """
        if data != b"":
            self._empty_stats.pop(relpath, None)
            return
        first = self._empty_stats.setdefault(relpath, stat)
        if first != stat:
            self._empty_stats[relpath] = stat
            self.bridge.emptied_again(relpath, self.clock())

    def on_changes(self, paths: Iterable[Path | str]) -> None:
        """The watcher's paths (below the root, as the watcher spells it)."""
        self.on_relpaths({self._relpath(path) for path in paths})

    def _relpath(self, path: Path | str) -> str:
        # By string where the path starts with the root: a Path and its
        # relative_to for each echo of a first sync's 10,000 files took a
        # tenth of a second per thousand.
        raw = os.fspath(path)
        if raw.startswith(self._root_prefix) and os.sep == "/":
            rest = raw[len(self._root_prefix) :]
            # What Path would spell otherwise ("a//b", "./a", "a/", dot folders):
            # the slow way, which normalises it.
            if "//" not in rest and "/." not in "/" + rest and not rest.endswith("/"):
                return rest
        return items.relpath_of(self.root, Path(raw))

    def on_relpaths(self, relpaths: Iterable[str]) -> None:
        # Deletions first: a rename is "gone" + "added", and the added file must
        # find its id free.
        stats = {relpath: self.fs.stat(relpath) for relpath in relpaths}
        present = [relpath for relpath, stat in stats.items() if stat is not None]
        for relpath in [relpath for relpath, stat in stats.items() if stat is None]:
            self.feed(relpath, reported=True)
        for relpath in self._reading_order(present):
            self.feed(relpath, reported=True)
        self.save_clock()

    def _reading_order(self, present: list[str]) -> list[str]:
        """The order to read ``present`` in, once the missing files are fed: the moves of
        missing files first (``Bridge.reading_order``, B72). Only while a missing file
        waits its delete grace are the files read for it; otherwise as given."""
        if len(present) < 2 or not self.bridge.pending_delete:
            return present
        limit = self.config.max_item_bytes
        return self.bridge.reading_order([(r, self.fs.read(r, limit)) for r in present])

    def on_timer(self) -> None:
        back = self._back_before_the_delete()
        if back:
            self.on_relpaths(back)
        self.execute(self.bridge.tick(self.clock()))

    def _back_before_the_delete(self) -> list[str]:
        """Paths whose delete grace is ending with a file there again.

        Under load the watcher can report the second half of a delete-and-recreate
        save later than the grace: decided then, the delete lost the item, and the
        save came back as a new file that undid a peer's concurrent line (chaos
        seed 30). The node owns the I/O, so it looks before the bridge decides:
        a file that is back is fed as the save it is, and only a path still
        missing is deleted.
        """
        now = self.clock()
        due = sorted(p for p, at in self.bridge.pending_delete.items() if at <= now)
        return [relpath for relpath in due if self.fs.stat(relpath) is not None]

    # -- effects -------------------------------------------------------------

    def execute(self, effects: list[br.Effect], depth: int = 0) -> None:
        # One transaction for the lot: a delete and its untracking, or an edit
        # and its file record, survive a power cut together or not at all.
        with self._durably():
            self._execute_all(effects, depth)
            self._save_bases()

    def _save_bases(self) -> None:
        """Keep the bridge's "state this file last matched" across restarts.

        A delete or a save decided after a restart must still be based on what
        the file held, not on peer changes that arrived since; the bases change
        only while a document is ahead of its file, so this writes rarely.
        """
        # Compared by value: a base replaced by a newer one under the same key
        # must be saved too (a stale base would merge old changes twice).
        for meta, state, encode in self._bridge_state():
            if state != self._saved.get(meta, {}):
                self._saved[meta] = dict(state)
                self.store.set_meta(meta, encode(state))

    def _bridge_state(self) -> list[tuple[str, dict[str, Any], Callable[[Any], bytes]]]:
        """What of the bridge must survive a restart, each under its meta name.

        Bases and seen states: a save or delete decided after a restart is still
        based on what the file showed. Strays: a user's move seen only after a
        restart still finds the file we wrote for a peer's rename as ours to give
        way. Departed: an editor still open on a moved file may save it after a
        restart. Revived: a file written back when its item outlived a delete still
        gives way to the user's move of it, read after a restart. Leftovers: the
        half-saved old file of a move is still merged. Returning: a file leaving
        the item (the file we wrote, giving way to the user's copy; the item's
        other file, when it came back to an old path) is merged from its own
        state, not the item's base, when its save lands after a restart.
        """
        bridge = self.bridge
        return [
            (BASES_META, bridge.base, _states_blob),
            (SEEN_META, bridge.seen, _states_blob),
            (STRAYS_META, bridge.strays, _dump_pairs),
            (DEPARTED_META, bridge.departed, _dump_pairs),
            (REVIVED_META, bridge.revived, _dump_pairs),
            (LEFTOVERS_META, bridge.leftovers, _json_blob),
            (RETURNING_META, bridge.returning, _dump_returning),
        ]

    def _execute_all(self, effects: list[br.Effect], depth: int) -> None:
        refused: str | None = None
        decided: set[str] = set()
        for effect in effects:
            if isinstance(effect, br.Tracked) and effect.relpath == refused:
                # The write this record describes was refused: the file does not
                # hold that digest, so the record would be a lie after a restart.
                refused = None
                continue
            if isinstance(effect, br.Tracked | br.Untracked) and effect.relpath in decided:
                continue
            if isinstance(effect, br.WriteFile):
                refused = None if self._write(effect, depth) else effect.relpath
                continue
            if isinstance(effect, br.RemoveFile):
                decided |= self._remove_recording(effect, depth)
                continue
            self._execute_one(effect, depth)

    def _remove_recording(self, effect: br.RemoveFile, depth: int) -> set[str]:
        """Run a removal; the paths whose records it stored or dropped.

        A refused removal runs the merge of the saved file at once (``_remove``), and
        that merge records its files anew. The rest of the list was decided before,
        as if the removal went: its records of those paths are stale. Stored after the
        merge's, they were a lie after a restart (soak seed 10394, B82): the item's
        file untracked, the user's copy the merge removed tracked again; the index,
        loaded, gave the item the gone copy's path, reconcile dropped that, and the
        item had no file: a peer's rename was written beside it as a new file.
        """
        outer, self._recorded = self._recorded, set()
        try:
            self._execute_one(effect, depth)
            return self._recorded
        finally:
            if outer is not None:
                outer |= self._recorded
            self._recorded = outer

    def _execute_one(self, effect: br.Effect, depth: int) -> None:
        match effect:
            case br.Persist(key, update):
                self._local_update(key, update)
            case br.Tracked(relpath, key, digest):
                self._track(relpath, key, digest)
            case br.Untracked(relpath):
                self._untrack(relpath)
            case br.WriteFile():
                raise AssertionError("execute() runs writes itself")
            case br.RemoveFile(relpath, expect, key):
                self._remove(relpath, expect, key, depth)
            case br.Reread(relpath):
                self.feed(relpath)
            case br.Report(relpath, reason):
                log.warning("%s: %s (file left untouched; last good state kept)", relpath, reason)
            case br.Emit(event):
                self.bus.publish(event.as_json())

    def _remove(self, relpath: str, expect: str, key: str, depth: int) -> None:
        self._sync_before_files()  # the update that deletes the item outlives its file
        if self.fs.remove_if(relpath, expect):
            self.bridge.removed(relpath, key)
        elif depth < MAX_WRITE_RETRIES:
            # Saved (or moved) since we last looked: merge it rather than drop it.
            data = self.fs.read(relpath, self.config.max_item_bytes)
            refused = self.bridge.on_remove_refused(relpath, key, data, self.clock())
            self.execute(refused, depth + 1)

    def _sync_before_files(self) -> None:
        """Make the updates so far durable, and with them the bridge's bases.

        A kill after this and before the file write (or removal) leaves the
        store ahead of the file, whose record still matches it. The base,
        stored in the same commit, says so at the next start: ``reconcile``
        renders the item again, and merges a save made on the stale file from
        the state the file showed (diffed against the store's state, the save
        would undo the update it never showed).
        """
        self._save_bases()
        self.store.sync()

    def _track(self, relpath: str, key: str, digest: str) -> None:
        stat = self._stats.pop(relpath, None) or self.fs.stat(relpath)
        if stat is not None:
            record = FileRecord(key, digest, stat.size, stat.mtime_ns)
            self.store.put_files([(relpath, record)])
        if self._recorded is not None:
            self._recorded.add(relpath)

    def _untrack(self, relpath: str) -> None:
        self.store.drop_files([relpath])
        if self._recorded is not None:
            self._recorded.add(relpath)

    def _write(self, effect: br.WriteFile, depth: int) -> bool:
        """Execute a write; False when it was refused (the file moved on, or unsafe).

        What the file will show is made durable before it can be seen (the
        store's sync commits the batch so far; the file system runs it before
        it makes the temp file): a file that outlived its update in a power
        cut would be read at start-up as the user's edit, and the update,
        coming again from a peer, would merge into it a second time.
        """
        durable = self._sync_before_files
        outcome = self.fs.write_if(effect.relpath, effect.text, effect.expect, durable)
        durable()  # a no-op after a write that ran it; a refused write did not sync
        return self._settle(effect, outcome, depth, check=True)

    def _settle(
        self,
        effect: br.WriteFile,
        outcome: WriteOutcome,
        depth: int,
        stat: Stat | None = None,
        *,
        check: bool = False,
    ) -> bool:
        """What follows a write's outcome; False when it was refused.

        ``stat``: the written file's, when the writer knows it (taken from the
        file before it had a name, so no save can have landed on it: no look
        needed). ``check``: otherwise the stat for the file's record is taken
        only if the file still holds what we wrote (see ``_stat_of_ours``).
        """
        if outcome is WriteOutcome.WRITTEN:
            self.bridge.wrote(effect.key, effect.relpath, self.clock())
            if stat is None:
                stat = self._stat_of_ours(effect) if check else self.fs.stat(effect.relpath)
            if stat is not None:
                self._stats[effect.relpath] = stat
            return True
        self.bridge.write_refused(effect.relpath, effect.key, effect.expect)
        if outcome is WriteOutcome.UNSAFE:
            log.warning("%s: leads outside the workspace; not written", effect.relpath)
            return False
        if depth >= MAX_WRITE_RETRIES:
            log.warning("%s: keeps changing under us; will retry on its next save", effect.relpath)
            return False
        # The user saved after our last look: ingest their save first, then render again.
        self.feed(effect.relpath)
        self.execute(self.bridge.on_remote(effect.key, effect.origin), depth + 1)
        return False

    def _stat_of_ours(self, effect: br.WriteFile) -> Stat:
        """The size and mtime for the record of a file we just wrote.

        A save that lands on top of our write before this stat would lend the
        record its own stat: start-up would skip the file as unchanged, and a
        save the watcher had no time to report (a kill, a stop) would reach no
        store. So the content is read after the stat; unless it is ours, the
        record gets a stat no file has, and start-up reads the file again.
        """
        stat = self.fs.stat(effect.relpath)
        data = self.fs.read(effect.relpath, self.config.max_item_bytes)
        if stat is None or data != effect.text.encode():
            return UNKNOWN_STAT
        return stat

    def save_clock(self, *, force: bool = False) -> None:
        """Persist the hybrid logical clock now and then (not on every save).

        Stamps also follow the wall clock and every stamp they replace, so a
        clock restored a little behind after a crash still orders edits right;
        saving it only guards against a wall clock that jumps back.
        """
        state = self.repo.writer.hlc.state()
        if not force and state[0] - self._clock_saved_ms < CLOCK_SAVE_EVERY_MS:
            return
        self._clock_saved_ms = state[0]
        self.store.set_meta(HLC_META, f"{state[0]},{state[1]}".encode())


def _shows_the_change(text: str, before: str | None, after: str | None) -> bool:
    """Whether ``text`` shows the change ``before`` -> ``after``: it holds a line only the
    change added, or else more of the lines it changed than not.

    A line the change set and the user then extended (a word added to it) still shows
    it: held whole inside a line of the user's own. Counted as missed, the line made a
    tie, the stale base was kept, and the save merged from it put the change in twice
    (B59). A line the user replaced does not hold it: a tie keeps the base, as before.
    """
    old = Counter((before or "").splitlines())
    new = Counter((after or "").splitlines())
    lines = Counter(text.splitlines())
    added, removed = new - old, old - new
    if any(line.strip() for line in added & lines):
        # A line only the write brought is in the file: it was written (the user saw
        # it). Lines of the change missing from the file are then the user's edits
        # since, not a sign of a write that never landed: counted, a tag the user had
        # removed made a tie, the stale base stayed, and the save merged from it held
        # the write's line twice (B68).
        return True
    own = [line for line in lines if line not in old and line not in new]
    held = Counter({line: n for line, n in (added - lines).items() if _within(line, own)})
    shown = sum((added & lines).values()) + sum((removed - lines).values()) + held.total()
    missed = sum((added - lines - held).values()) + sum((removed & lines).values())
    return shown > missed


def _within(line: str, others: list[str]) -> bool:
    """Whether a non-blank ``line`` is part of one of ``others``."""
    return bool(line.strip()) and any(line in other for other in others)


def _simple_new_write(effects: list[br.Effect]) -> bool:
    """The bridge's effects for an item whose file does not exist yet: write, track, emit."""
    return (
        len(effects) == 3
        and isinstance(effects[0], br.WriteFile)
        and effects[0].expect is None
        and isinstance(effects[1], br.Tracked)
        and isinstance(effects[2], br.Emit)
    )


def _b64(state: bytes | None) -> str | None:
    return None if state is None else base64.b64encode(state).decode()


def _json_blob(value: dict[str, str]) -> bytes:
    return json.dumps(value).encode()


def _dump_pairs(pairs: dict[str, tuple[str, bytes | None]]) -> bytes:
    return json.dumps({k: [name, _b64(state)] for k, (name, state) in pairs.items()}).encode()


def _load_pairs(store: Store, meta: str) -> dict[str, tuple[str, bytes | None]]:
    """A saved ``key -> (name, state)`` map (bridge strays, departed files)."""
    raw = store.get_meta(meta)
    try:
        data = json.loads(raw) if raw else {}
        return {
            str(k): (str(v[0]), None if v[1] is None else base64.b64decode(v[1]))
            for k, v in data.items()
        }
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        log.warning("the saved %s are unreadable; starting without them", meta)
        return {}


def _dump_returning(returning: dict[str, tuple[str, bytes, int]]) -> bytes:
    return json.dumps(
        {path: [key, _b64(state), due] for path, (key, state, due) in returning.items()}
    ).encode()


def _load_returning(store: Store, due_ms: int) -> dict[str, tuple[str, bytes, int]]:
    """The saved ``Bridge.returning``, each due no sooner than ``due_ms``."""
    raw = store.get_meta(RETURNING_META)
    try:
        data = json.loads(raw) if raw else {}
        return {
            str(path): (str(v[0]), base64.b64decode(v[1]), max(int(v[2]), due_ms))
            for path, v in data.items()
        }
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        log.warning("the saved bridge returning files are unreadable; starting without them")
        return {}


def _states_blob(states: dict[str, bytes]) -> bytes:
    return json.dumps({key: _b64(state) for key, state in states.items()}).encode()


def _load_leftovers(store: Store) -> dict[str, str]:
    raw = store.get_meta(LEFTOVERS_META)
    try:
        data = json.loads(raw) if raw else {}
        return {str(k): str(v) for k, v in data.items()}
    except (ValueError, AttributeError):
        log.warning("the saved bridge leftovers are unreadable; starting without them")
        return {}


def _load_bases(store: Store, name: str) -> dict[str, bytes]:
    raw = store.get_meta(name)
    try:
        data = json.loads(raw) if raw else {}
        return {str(k): base64.b64decode(v) for k, v in data.items()}
    except (ValueError, AttributeError, TypeError):
        log.warning("the saved %s are unreadable; starting without them", name)
        return {}


def _load_peers(store: Store) -> dict[str, dict[str, Any]]:
    raw = store.get_meta(PEERS_META)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _load_hlc(store: Store) -> tuple[int, int]:
    raw = store.get_meta(HLC_META)
    if raw is None:
        return 0, 0
    ms, counter = raw.decode().split(",")
    return int(ms), int(counter)


def _md_filter(root: Path) -> Callable[[str], bool]:
    def accept(raw_path: str) -> bool:
        return items.is_item_path(root, Path(raw_path))

    return accept


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@dataclass(frozen=True)
class NetOptions:
    """Where to listen and whom to dial; ``enabled=False`` runs the folder alone.

    ``mdns`` also finds peers of the workspace by mDNS, on ``interfaces`` (IP
    addresses or interface names; empty for all).
    """

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 0
    peers: tuple[str, ...] = ()
    mdns: bool = False
    interfaces: tuple[str, ...] = ()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def running(
    root: Path,
    bus: EventBus | None = None,
    net: NetOptions | None = None,
    on_peer: Callable[[str, str], None] | None = None,
) -> AsyncIterator[LocalNode]:
    """A started node following ``root`` (init, lock, reconcile, watcher, timers, events, peers)."""
    workspace = init(root).workspace
    config = workspace.load_config()
    net = net or NetOptions(enabled=False)
    stop = asyncio.Event()
    with DaemonLock(workspace.lock_path), SqliteStore(workspace.store_path) as store:
        node = LocalNode(workspace, config, store, bus)
        node.load()
        _finish_unfinished_writes(node)
        node.reconcile()
        async with (
            serve_events(workspace.state_dir, node.bus) as socket_path,
            _peering(node, net, on_peer),
        ):
            node.events_socket = socket_path
            if node.peering is not None:
                # Peers hear of the offline edits reconcile took in before the
                # watcher's start (tens of ms over 10,000 files) holds the loop up;
                # what is saved meanwhile the watcher's catch-up finds.
                await node.peering.first_rounds(FIRST_ROUND_WAIT_S)
            async with asyncio.TaskGroup() as group:
                group.create_task(_follow(node, stop))
                try:
                    await node.ready.wait()
                    yield node
                finally:
                    stop.set()
        node.save_clock(force=True)


def _finish_unfinished_writes(node: LocalNode) -> None:
    """Temp files a killed daemon left: a user's save goes back in place, the rest goes."""
    root, limit = node.root, node.config.max_item_bytes
    for temp, relpath in files.leftover_temps(root):
        data = files.read_item_bytes(root / temp, limit)
        try:
            if node.leftover_is_a_save(relpath, data, files.read_item_bytes(root / relpath, limit)):
                files.put_back(root, temp, relpath)
                log.warning("%s: a save a killed daemon had moved aside is back in place", relpath)
            else:
                (root / temp).unlink()
                log.info("%s: removed %s, a write a killed daemon left unfinished", relpath, temp)
        except OSError as error:
            log.warning("%s: could not tidy %s (%s); left as it is", relpath, temp, error)


@contextlib.asynccontextmanager
async def _peering(
    node: LocalNode, net: NetOptions, on_peer: Callable[[str, str], None] | None
) -> AsyncIterator[None]:
    if not net.enabled:
        yield
        return

    def peer_changed(peer_id: str, what: str, address: str) -> None:
        node.saw_peer(peer_id, address)
        node.bus.publish({"event": "peer", "peer": peer_id, "state": what})
        if on_peer is not None:
            on_peer(peer_id, what)

    identity = node.workspace.load_identity()
    peering = Peering(
        node,
        identity,
        node.workspace.load_secret(),
        is_allowed=node.is_allowed,
        on_change=peer_changed,
    )
    _restore_digests(node)
    if len(node.repo) <= 1:  # no item (the membership document at most): a join
        # A first sync is likely; its workers start now, beside the handshake
        # and the digest exchange, not with its first batch (which they then
        # missed). Unused, they stop after renderpool.IDLE_S.
        pool = renderpool.shared()
        if pool is not None:
            pool.warm()

    def local_update(key: str, update: bytes) -> None:
        node.items.refresh(key)
        peering.broadcast(key, update)

    node.on_local_update = local_update
    port = await peering.listen(net.host, net.port)
    node.address = f"{net.host}:{port}"
    for address in net.peers:
        peering.dial_forever(*split_address(address))
    node.peering = peering
    discovery = _discovery(peering) if net.mdns else None
    try:
        if discovery is not None:
            await _discover(node, net, discovery, port)
        yield
    finally:
        node.on_local_update = None
        if discovery is not None:
            await discovery.stop()
        await peering.close()
        _save_digests(node)


def _discovery(peering: Peering) -> Discovery:
    from worksync_p2p.adapters.mdns import Discovery  # noqa: PLC0415 - see the TYPE_CHECKING import

    return Discovery(_dial_once(peering))


def _restore_digests(node: LocalNode) -> None:
    """The digest index saved at the last clean stop, if the store is unchanged since.

    The index is a pure function of the stored updates; the store's
    fingerprint says whether they are still the ones it was built from. Any
    other case (a crash, an edit while stopped, compaction) rebuilds it.
    """
    store = node.store
    saved = store.get_meta(DIGESTS_META) if isinstance(store, SqliteStore) else None
    if saved is not None and isinstance(store, SqliteStore):
        fingerprint = store.fingerprint()
        if saved[: len(fingerprint)] == fingerprint:
            try:
                node.items.restore(DigestIndex.from_bytes(saved[len(fingerprint) :]))
                return
            except (ValueError, UnicodeDecodeError):
                log.warning("the saved digest index is unreadable; rebuilding it")
    node.items.refresh_all()


def _save_digests(node: LocalNode) -> None:
    store = node.store
    if isinstance(store, SqliteStore):
        store.set_meta(DIGESTS_META, store.fingerprint() + node.items.digests.to_bytes())


def _dial_once(peering: Peering) -> Callable[[str, str, int], None]:
    """Dial each peer mDNS finds once; ``dial_forever`` keeps that connection."""
    dialled: set[str] = set()

    def found(peer_id: str, host: str, port: int) -> None:
        if peer_id not in dialled:
            dialled.add(peer_id)
            peering.dial_forever(host, port)

    return found


async def _discover(node: LocalNode, net: NetOptions, discovery: Discovery, port: int) -> None:
    specific = [net.host] if net.host not in ("", "0.0.0.0", "::") else None
    tag = workspace_tag(node.workspace.load_secret())
    interfaces = list(net.interfaces) or None
    try:
        await discovery.start(node.peer_id, port, tag, interfaces, addresses=specific)
    except (OSError, ValueError) as error:
        log.warning("mDNS discovery is off (%s); static peers still work", error)


async def run(
    root: Path,
    *,
    on_started: Callable[[Started], None] | None = None,
    stop: asyncio.Event | None = None,
    net: NetOptions | None = None,
    on_peer: Callable[[str, str], None] | None = None,
) -> None:
    """``worksync-p2p up``: run until SIGINT/SIGTERM (or ``stop``) arrives."""
    stop = stop or asyncio.Event()
    with _signals_set(stop):
        async with running(root, net=net, on_peer=on_peer) as node:
            if on_started is not None:
                on_started(node.started())
            await stop.wait()


async def _follow(node: LocalNode, stop: asyncio.Event) -> None:
    wake = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(_watch(node, stop, wake))
        group.create_task(_timers(node, stop, wake))
        await stop.wait()
        wake.set()


async def _watch(node: LocalNode, stop: asyncio.Event, wake: asyncio.Event) -> None:
    probe = node.workspace.state_dir / WATCH_PROBE
    accept = _md_filter(node.root)

    def accept_with_probe(raw_path: str) -> bool:
        return raw_path == str(probe) or accept(raw_path)

    config = node.config
    with Watcher(
        node.root,
        accept_with_probe,
        step_ms=config.watch_step_ms,
        debounce_ms=config.watch_debounce_ms,
        doorbell=config.watch_doorbell,
    ) as watcher:
        node.catch_up()
        async with asyncio.TaskGroup() as group:
            group.create_task(_announce_ready(node, probe, stop, watcher.ring))
            group.create_task(_close_on(stop, watcher))
            probe_path = str(probe)
            while (changed := await watcher.next()) is not None:
                paths = set(changed)
                if probe_path in paths:
                    paths.discard(probe_path)
                    node.ready.set()
                node.on_changes(paths)
                wake.set()


async def _close_on(stop: asyncio.Event, watcher: Watcher) -> None:
    await stop.wait()
    watcher.close()


async def _announce_ready(
    node: LocalNode, probe: Path, stop: asyncio.Event, ring: Callable[[], None]
) -> None:
    """Touch a probe file until the watcher reports it: from then on no save is missed.

    watchfiles has no "watching now" signal, and a save made before its watch is
    registered would go unseen until the next one.
    """
    for _ in range(PROBE_TRIES):
        if node.ready.is_set() or stop.is_set():
            return
        probe.write_bytes(b"")
        ring()  # the doorbell does not watch .worksync/
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.ready.wait(), PROBE_INTERVAL_S)
    log.warning("the file watcher did not report its probe; saves may be seen late")
    node.ready.set()


async def _timers(node: LocalNode, stop: asyncio.Event, wake: asyncio.Event) -> None:
    """Run the bridge's timers (delete grace, re-reads) at their deadlines."""
    while not stop.is_set():
        deadline = node.bridge.deadline_ms()
        timeout = None if deadline is None else max(0.0, (deadline - now_ms()) / 1000)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
        due = node.bridge.deadline_ms()
        # Woken by a batch of saves with nothing due: an empty transaction saved.
        if due is not None and due <= now_ms():
            node.on_timer()
