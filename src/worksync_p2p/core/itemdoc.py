"""One work item as one Yjs-compatible document, and the merge rules.

Shape of the document (names are part of the wire format; JavaScript readers
use them too, see README "Document schema"):

* ``meta`` (Y.Map): ``key`` (the item key), ``genesis:<G>`` for every genesis
  that seeded the item, and the registers ``path|<writer>`` (the item's
  relative path) and ``rev|<writer>`` (what the writer's last edit left:
  hashes of head and body, or null for a delete), cells as in ``fields.py``.
* ``fields`` (Y.Map): the frontmatter, see ``fields.py``.
* ``head:<G>`` and ``body:<G>`` (Y.Text): the frontmatter block as written
  (the template that keeps comments, order and spelling) and the body.

Seeding. Two clones of one repository must meet without duplicating text. A
genesis is written by a client id derived from the item key and the file's
bytes, so identical files seed identical operations and Yjs merges them into
one. Different files seed different geneses; their texts live in separate
``head:<G>``/``body:<G>`` types so they never interleave, the highest ``G``
is the item, and the others stay readable as seed conflicts.

The same edit made on two replicas independently (both pulled one commit) is
applied twice by any CRDT. Each edit records the hash of the text it left in
its ``rev`` register; when the concurrent ``rev`` entries all name one hash,
the merged text differs from it and this replica held exactly that text before
the merge, the replica deletes the duplicate. Every replica computes the same
deletions from the same merged state, so the repairs are idempotent. A client
in another language that edits the texts must write its ``rev`` cell too
(hashes are the first 20 hex digits of SHA-256 of the UTF-8 text), or its
concurrent edit may be taken for part of a duplicate.

Deletion is an add-wins flag: a delete writes a null ``rev`` over the entries
it has seen; an edit the delete did not see leaves a non-null entry beside it,
and the item lives on.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pycrdt import Doc, Map, Text

from worksync_p2p.core import codec, fields, textdiff, values, yupdate
from worksync_p2p.core import digest as dg
from worksync_p2p.core.hlc import GENESIS_MS, Hlc, Stamp

LOCAL_ORIGIN = "local"
REPAIR_ORIGIN = "repair"

GENESIS_CLIENT_BITS = 48
"""Client ids stay below 2**53, the largest integer JavaScript's Yjs decodes exactly."""

_T = TypeVar("_T")

REGISTERS = ("path", "rev")
"""The meta registers (``<name>|<writer>`` cells)."""

RENDERS_KEPT = 256
"""Renders kept by encoded state (about 4 KB each, plus the text)."""
_RENDERS: dict[bytes, str | None] = {}


@dataclass
class Writer:
    """Who edits and when: the peer id, its clock and the current time."""

    peer: str
    hlc: Hlc
    now_ms: int

    def stamp_after(self, previous: Stamp | None) -> Stamp:
        stamp = self.hlc.tick(self.now_ms, previous)
        # A fork may write under another name than the clock's (``Repo.fork_writer``).
        return stamp if stamp.writer == self.peer else Stamp(stamp.ms, stamp.counter, self.peer)


@dataclass(frozen=True)
class SeedConflict:
    """A different version of the item that seeded it elsewhere, kept readable."""

    genesis: str
    text: str
    values: dict[str, Any] = field(default_factory=dict)
    """The values that version seeded, by field (``a.b`` for nested ones).

    Its head text is patched with the values that won while it was the item's
    version; once it is not, what it held itself is only here (a claim made
    on a clone before its first start, say, lost to a concurrent one).
    """


@dataclass(frozen=True)
class Register:
    """One writer's cell of a meta register (shared between reads: never changed)."""

    key: str
    stamp: Stamp
    value: Any


@functools.lru_cache(maxsize=4096)
def _register(key: str, raw: str, writer: str) -> Register:
    """One meta cell decoded; kept, since an item is read again after each change
    and its cells are mostly the ones it held before (not for a cell that raises)."""
    data = values.decode(raw)
    return Register(key, Stamp(int(data[0]), int(data[1]), writer), data[2])


def geneses_of(meta: Mapping[str, Any]) -> list[str]:
    """The seeds named in a read ``meta`` map, oldest first (the last is the item)."""
    return sorted(k.split(":", 1)[1] for k in meta if k.startswith("genesis:"))


_geneses = geneses_of


def genesis_id(key: str, text: str) -> str:
    digest = hashlib.sha256(f"{key}\0{text}".encode()).digest()[:6]
    return digest.hex()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def genesis_client(genesis: str) -> int:
    """The client id a genesis writes as (the same on every peer that seeds it)."""
    return int(genesis, 16) & ((1 << GENESIS_CLIENT_BITS) - 1)


def genesis_update(key: str, item: codec.ParsedItem, path: str) -> bytes:
    """The update that seeds ``item``: byte-identical for byte-identical input."""
    genesis = genesis_id(key, codec.render(item) + "\0" + path)
    doc: Doc[Any] = Doc(client_id=genesis_client(genesis))
    writer = fields.GENESIS_PREFIX + genesis
    meta = doc.get("meta", type=Map)
    with doc.transaction(origin=LOCAL_ORIGIN):
        meta["key"] = key
        meta[f"genesis:{genesis}"] = "1"
        doc.get(f"head:{genesis}", type=Text).insert(0, item.head)
        doc.get(f"body:{genesis}", type=Text).insert(0, item.body)
        stamp = Stamp(GENESIS_MS, 0, writer)
        _set_meta_register(meta, "path", stamp, path, seen=[])
        rev = {"h": text_hash(item.head), "b": text_hash(item.body)}
        _set_meta_register(meta, "rev", stamp, rev, seen=[])
        index = fields.FieldIndex(active_genesis=genesis)
        field_writer = fields.FieldWriter(
            doc.get("fields", type=Map), index, writer, lambda _prev: stamp
        )
        field_writer.write_map((), item.fields or {})
    return doc.get_update()


class _Changes:
    """Counts the changes committed to one document (pycrdt calls it at each).

    It holds nothing but the count. ``Doc.observe`` would wrap the callback
    with the Doc itself: a reference cycle through Rust that the garbage
    collector cannot see, so every observed document would stay in memory.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _event: object) -> None:
        self.count += 1


class ItemDoc:
    """A pycrdt Doc seen as a work item. All mutation goes through methods here.

    Reads are kept until the document changes. An item is read many times per
    change (the bridge's looks before and after a peer's update, the render,
    the path, whether it lives, the digest, the checks of the simulations), and
    each read is a JSON round trip through Rust or an encode of the whole
    state. pycrdt reports every committed change (a local transaction, an
    applied update; not a read, nor an update still waiting for what it
    depends on, which changes nothing), and a change empties the cache. Inside
    our own transactions nothing is kept: what is read there is not committed.
    What the cache hands out is shared: callers must not change it.
    """

    def __init__(self, doc: Doc[Any] | None) -> None:
        """``doc`` None: only for :meth:`asleep`, which says what the document will hold."""
        self._doc: Doc[Any] | None = None
        self._changes = _Changes()
        self._cache: dict[str, Any] = {}
        self._cached_at = 0  # the change count the cache was filled at
        self._writing = False
        self._text_types: dict[str, tuple[Text, Text]] = {}
        self._asleep: tuple[int, bytes] | None = None
        """``(client id, state)`` of a document not made yet (:meth:`asleep`)."""
        if doc is not None:
            self._bind(doc)

    def _bind(self, doc: Doc[Any]) -> None:
        self._doc = doc
        self._meta_map: Map[Any] = doc.get("meta", type=Map)
        self._fields_map: Map[Any] = doc.get("fields", type=Map)
        # Kept here only: dropping the subscription stops the counting (see _Changes).
        self._subscription = doc._doc.observe(self._changes)

    @classmethod
    def asleep(
        cls, client_id: int, state: bytes, text: str | None, path: str | None, digest: bytes
    ) -> ItemDoc:
        """The item of ``state``, whose render, path and digest were read elsewhere (a render
        worker's ``read_new``, which found that a new document encodes ``state``
        back byte for byte), with its document made only when first used.

        Most items a first sync brings are written to disk and not touched
        again; making their documents (about a fifth of the receiving daemon's
        time: the Doc, the apply, its encode) is then work nobody needs.
        """
        item = cls(None)
        item._asleep = (client_id, state)
        item._cache.update(encoded=state, render=text, path=path, digest=digest)
        return item

    @property
    def doc(self) -> Doc[Any]:
        return self._doc if self._doc is not None else self._wake()

    @property
    def _meta(self) -> Map[Any]:
        if self._doc is None:
            self._wake()
        return self._meta_map

    @property
    def _fields(self) -> Map[Any]:
        if self._doc is None:
            self._wake()
        return self._fields_map

    def _wake(self) -> Doc[Any]:
        """Make the document of an item :meth:`asleep`; what was read of it stays kept."""
        assert self._asleep is not None
        client_id, state = self._asleep
        self._asleep = None
        doc: Doc[Any] = Doc(client_id=client_id)
        doc.apply_update(state)
        self._bind(doc)  # observed from here: the apply is no change to what was read
        if doc.get_update() != state:  # the worker's check, made again: never trust a cache
            self._cache.clear()
        return doc

    @property
    def is_asleep(self) -> bool:
        return self._doc is None

    def _fresh(self) -> None:
        """Forget what was read before the last change."""
        if self._cached_at != self._changes.count:
            self._cache.clear()
            self._cached_at = self._changes.count

    def _kept(self, name: str, read: Callable[[], _T]) -> _T:
        """``read()``, or what it gave since the last change."""
        if self._writing:
            return read()
        if self._cached_at != self._changes.count:
            self._fresh()
        try:
            value: _T = self._cache[name]
        except KeyError:
            value = self._cache[name] = read()
        return value

    def encoded(self) -> bytes:
        """The whole state as one update (``Doc.get_update()``)."""
        return self._kept("encoded", self._encode)

    def digest(self) -> bytes:
        """The hash the replicas compare (``digest.item_hash`` of the encoded state)."""
        return self._kept("digest", lambda: dg.item_hash(self.encoded()))

    def _encode(self) -> bytes:
        return self.doc.get_update()  # not ``self.doc.get_update`` above: that wakes an item asleep

    def _meta_items(self) -> dict[str, Any]:
        return self._kept("meta", lambda: fields.map_items(self._meta))

    @classmethod
    def new(cls, client_id: int) -> ItemDoc:
        return cls(Doc(client_id=client_id))

    # -- reading ---------------------------------------------------------

    @property
    def key(self) -> str | None:
        key = self._meta.get("key")
        return key if isinstance(key, str) else None

    def geneses(self) -> list[str]:
        return list(self._kept("geneses", lambda: _geneses(self._meta_items())))

    def active_genesis(self) -> str | None:
        found = self.geneses()
        return found[-1] if found else None

    def _texts(self, genesis: str) -> tuple[Text, Text]:
        # Root types stay what they are: the same two objects serve every read.
        texts = self._text_types.get(genesis)
        if texts is None:
            texts = (
                self.doc.get(f"head:{genesis}", type=Text),
                self.doc.get(f"body:{genesis}", type=Text),
            )
            self._text_types[genesis] = texts
        return texts

    def _registers(self, name: str) -> list[Register]:
        """One meta register's live cells."""
        return list(self._kept("registers", self._read_registers).get(name, ()))

    def _read_registers(self) -> dict[str, list[Register]]:
        """Every register's live cells, by register name, in one pass over the map."""
        meta = self._meta_items()
        found = self._kept("geneses", lambda: _geneses(meta))
        active = found[-1] if found else None
        out: dict[str, list[Register]] = {}
        for key, raw in meta.items():
            name, bar, writer = key.partition("|")
            if not bar or name not in REGISTERS:
                continue
            if writer.startswith(fields.GENESIS_PREFIX) and writer[2:] != active:
                continue
            try:
                out.setdefault(name, []).append(_register(key, raw, writer))
            except (ValueError, IndexError, KeyError, TypeError):
                continue  # not our schema: a buggy or hostile client wrote it; ignore it
        return out

    def path(self) -> str | None:
        return self._kept("path", self._read_path)

    def _read_path(self) -> str | None:
        cells = self._registers("path")
        if not cells:
            return None
        path = max(cells, key=lambda c: c.stamp).value
        return path if isinstance(path, str) else None

    def alive(self) -> bool:
        return any(cell.value is not None for cell in self._registers("rev"))

    def field_index(self) -> fields.FieldIndex:
        """The fields of the active genesis (shared: not to be changed)."""
        return self._kept(
            "index", lambda: fields.FieldIndex.of(self.field_cells(), self.active_genesis())
        )

    def field_cells(self) -> Mapping[str, Any]:
        """The raw cells of the ``fields`` map (for a quick "did anything change")."""
        return self._kept("fields", lambda: fields.map_items(self._fields))

    def meta_cells(self) -> Mapping[str, Any]:
        """The raw entries of the ``meta`` map."""
        return self._meta_items()

    def frontmatter(self) -> dict[str, Any]:
        return fields.resolve(self.field_index())

    def head_body(self) -> tuple[str, str] | None:
        return self._kept("head_body", self._read_head_body)

    def _read_head_body(self) -> tuple[str, str] | None:
        genesis = self.active_genesis()
        if genesis is None:
            return None
        head, body = self._texts(genesis)
        return str(head), str(body)

    def render(self) -> str | None:
        """The file text this state stands for; None when deleted or empty.

        Kept until the document changes (see the class): an item is rendered
        several times per change (the bridge, the save path, the checks). Not
        keyed by the snapshot (state vector and delete set): in CI seed 76 a
        document's content changed with both unchanged, the kept render lacked
        a peer's line, and a save merged from that state deleted it (B22).

        Renders are also kept by the encoded state they came from, for any
        document (rendering is a pure function of the state, see
        :meth:`take_render`): a document brought back to life renders as it
        did, and in the simulations each peer holds each state the others do.
        """
        return self._kept("render", self._render_of_state)

    def _render_of_state(self) -> str | None:
        if self._writing:
            return self._render()  # not committed: not worth keeping
        state = self.encoded()
        if state in _RENDERS:
            return _RENDERS[state]
        text = self._render()
        _RENDERS[state] = text
        if len(_RENDERS) > RENDERS_KEPT:
            del _RENDERS[next(iter(_RENDERS))]  # the one kept longest
        return text

    def take_render(self, state: bytes, text: str | None, path: str | None) -> None:
        """Keep ``text`` and ``path``, read elsewhere (by :func:`read_new` in a
        worker) from the update ``state``, as this document's render and path if it
        holds exactly that state; until it changes, as reads made here would be.
        (Reading the path decodes every meta cell: a tenth of a first sync's
        time in the daemon, which the worker had spent already.)

        Rendering is a pure function of the state. A new document that applied
        one full update encodes back to that update's bytes, so the check is a
        comparison of bytes; a document changed since (a repair on adoption)
        keeps rendering for itself.
        """
        if self.encoded() != state:
            return
        self._fresh()
        self._cache["render"] = text
        self._cache["path"] = path

    def _render(self, *, once: bool = False) -> str | None:
        """``once``: this state is rendered once only (a worker's new document),
        so the head renders are not kept (``codec.render_head_once``)."""
        found = self.geneses()
        if not found or not self.alive():
            return None
        head, body = self.head_body() or ("", "")
        if len(found) == 1 and self._pristine(found[0]):
            return head + body
        return self._render_fields(head, body, once=once)

    def _render_fields(self, head: str, body: str, *, once: bool = False) -> str:
        """The render from the head and the fields: the head as it is where it
        still stands for the fields, patched or written anew where not."""
        resolved = fields.resolve(self.field_index())
        frontmatter = None if head == "" and not resolved else resolved
        render_head = codec.render_head_once if once else codec.render_head
        return render_head(head, frontmatter) + body

    def _pristine(self, genesis: str) -> bool:
        """Whether the document holds its genesis alone: written by nobody since it
        was seeded (its one writer is the genesis's own client) and nothing deleted.

        Its render is then its head and body as they were seeded: the genesis
        took its fields from that head (``genesis_update``), so the head stands
        for them and rendering it again would give it back unchanged. That check
        (reading every field cell, resolving them, parsing the head's YAML to
        compare) was two thirds of rendering an item a peer sent for the first
        time, for the many items nobody has edited since they were first read.
        A state a peer crafted with other fields under a seeded head renders the
        same way on every peer: the render stays a function of the state.
        """
        return yupdate.sole_writer(self.doc) == genesis_client(genesis)

    def field_conflicts(self) -> Iterator[fields.FieldConflict]:
        return fields.conflicts(self.field_index())

    def path_conflicts(self) -> list[Register]:
        cells = sorted(self._registers("path"), key=lambda c: c.stamp, reverse=True)
        return cells if len(cells) > 1 else []

    def seed_conflicts(self) -> list[SeedConflict]:
        out = []
        for genesis in self.geneses()[:-1]:
            head, body = self._texts(genesis)
            seeded = fields.seeded_values(fields.FieldIndex.read(self._fields, genesis))
            out.append(SeedConflict(genesis, str(head) + str(body), seeded))
        return out

    def repairs(self) -> dict[str, str]:
        """Duplicate text removed by repairs, by the hash of the merged text."""
        return {
            k.split(":", 1)[1]: str(v)
            for k, v in self._meta_items().items()
            if k.startswith("repair:")
        }

    # -- writing ---------------------------------------------------------

    def _transact(self, origin: str, change: Callable[[], None]) -> bytes | None:
        before = self.doc.get_state()
        self._writing = True
        try:
            with self.doc.transaction(origin=origin):
                change()
        finally:
            self._writing = False
        after = self.doc.get_state()
        return None if after == before else self.doc.get_update(before)

    def ingest(
        self, item: codec.ParsedItem, path: str, writer: Writer, *, seen: bytes | None = None
    ) -> bytes | None:
        """Make the document stand for ``item`` at ``path``: the update, or None if equal.

        ``seen``: an older state whose field values the file showed (the file
        has not changed since, though values that lost to its own arrived);
        a value replaced keeps those losers as conflicts.
        """
        genesis = self.active_genesis()
        if genesis is None:
            raise ValueError("ingest into a document without genesis; seed it first")
        index = self.field_index()
        if self._stands_for(genesis, index, item, path):
            return None
        keep = frozenset[str]() if seen is None else fields.unseen(index, field_index_of(seen))
        return self._transact(
            LOCAL_ORIGIN, lambda: self._write(genesis, index, item, path, writer, keep=keep)
        )

    def _stands_for(
        self, genesis: str, index: fields.FieldIndex, item: codec.ParsedItem, path: str
    ) -> bool:
        """Whether rendering would give exactly ``item`` (checked without rendering).

        The save path runs this on every save; comparing texts and values is
        several times cheaper than patching the head template to compare.
        """
        if not self.alive():
            return False
        cells = self._registers("path")
        if not cells or max(cells, key=lambda c: c.stamp).value != path:
            return False
        head, body = self._texts(genesis)
        if str(body) != item.body:
            return False
        if str(head) != item.head:
            return self.render() == codec.render(item)  # usually kept from the last write
        resolved = fields.resolve(index)
        if item.fields is None:
            return not resolved
        return codec.fields_equal(resolved, item.fields)

    def _write(
        self,
        genesis: str,
        index: fields.FieldIndex,
        item: codec.ParsedItem,
        path: str,
        writer: Writer,
        *,
        keep: frozenset[str],
    ) -> None:
        head, body = self._texts(genesis)
        textdiff.set_text(head, str(head), item.head)
        textdiff.set_text(body, str(body), item.body)
        fields.FieldWriter(self._fields, index, writer.peer, writer.stamp_after, keep).write_map(
            (), item.fields or {}
        )
        if self.path() != path:
            self._write_register("path", path, writer)
        rev = {"h": text_hash(item.head), "b": text_hash(item.body)}
        self._write_register("rev", rev, writer)

    def delete(self, writer: Writer) -> bytes | None:
        """Delete the item; an edit made concurrently elsewhere will win over this."""
        if not self.alive():
            return None
        return self._transact(LOCAL_ORIGIN, lambda: self._write_register("rev", None, writer))

    def _write_register(self, name: str, value: Any, writer: Writer) -> None:
        seen = self._registers(name)
        latest = max((c.stamp for c in seen), default=None)
        stamp = writer.stamp_after(latest)
        _set_meta_register(self._meta, name, stamp, value, seen=seen)

    def apply_remote(self, update: bytes) -> bytes | None:
        """Apply a peer's update; returns a repair update to send on, if one was needed."""
        genesis_before = self.active_genesis()
        texts_before = self.head_body()
        revs_before = self._registers("rev")
        self.doc.apply_update(update)
        if genesis_before is None or texts_before is None:
            return None
        if self.active_genesis() != genesis_before:
            return None
        if self._registers("rev") == revs_before and yupdate.waiting(self.doc, update):
            # Text came in, but no ``rev`` cell: the cell that tells of it waits for
            # structs it depends on (a fork's edit of a state we do not hold yet). Every
            # ``rev`` still said the text we held, so the repair took the new text for a
            # duplicate and deleted it, a save's line lost for good (B78). A repair
            # whose ``rev`` cells came while something else of the update waits (soak
            # seed 10428: a same edit's) is still made. The cells compare in key order
            # (``fields.map_items``): in the map's own order, which is random per process,
            # the same cells could compare unequal (B79).
            return None
        return self._repair_duplicates(genesis_before, texts_before)

    def _repair_duplicates(self, genesis: str, before: tuple[str, str]) -> bytes | None:
        revs = [c.value for c in self._registers("rev") if isinstance(c.value, dict)]
        if len(revs) < 2:
            return None
        head, body = self._texts(genesis)
        plan: list[tuple[Text, str, list[textdiff.Edit]]] = []
        for text, held, part in ((head, before[0], "h"), (body, before[1], "b")):
            hashes = {str(rev.get(part)) for rev in revs}
            merged = str(text)
            if len(hashes) != 1 or merged == held or text_hash(held) not in hashes:
                continue
            edits = textdiff.deletions_to(merged, held)
            if edits:
                plan.append((text, merged, edits))
        if not plan:
            return None

        def repair() -> None:
            for text, merged, edits in plan:
                removed = "".join(merged[e.start : e.end] for e in edits)
                self._meta[f"repair:{text_hash(merged)}"] = removed
                textdiff.apply(text, merged, edits)

        return self._transact(REPAIR_ORIGIN, repair)


def own_cells(item: ItemDoc, writer: str) -> dict[str, Any]:
    """The field cells and meta registers ``writer`` holds in ``item`` (keys end in its name)."""
    suffix = "|" + writer
    cells = {**item.field_cells(), **item.meta_cells()}
    return {k: v for k, v in cells.items() if k.endswith(suffix)}


def read_new(update: bytes) -> tuple[str | None, str | None, bool]:
    """The render and the path of a new document after ``update`` (for
    ``ItemDoc.take_render``), and whether that document encodes back to exactly
    ``update`` (for ``ItemDoc.asleep``: not so when part of it waits for what it
    depends on). Raises ValueError for an update that does not decode."""
    item = ItemDoc.new(0)
    item.doc.apply_update(update)
    return item._render(once=True), item.path(), item.doc.get_update() == update


def field_index_of(state: bytes) -> fields.FieldIndex:
    """The fields of an encoded state, read without touching any live document."""
    item = ItemDoc.new(0)
    item.doc.apply_update(state)
    return item.field_index()


def _set_meta_register(
    meta: Map[Any],
    name: str,
    stamp: Stamp,
    value: Any,
    *,
    seen: list[Register],
) -> None:
    for cell in seen:
        del meta[cell.key]
    meta[f"{name}|{stamp.writer}"] = values.dumps([stamp.ms, stamp.counter, value])
