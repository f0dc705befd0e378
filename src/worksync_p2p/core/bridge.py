"""The file bridge as a sans-I/O state machine: file contents in, effects out.

Rules, in the order they matter:

1. Idempotence makes loops impossible. A file whose bytes hash to what we
   last ingested or wrote is not looked at again; a document that renders to
   what the file holds is not written. Our own writes come back from the
   watcher and stop at rule 1.
2. Nothing the user saved is overwritten. Every write carries the hash of the
   file it expects to replace; the node refuses a write when the file moved on,
   feeds the new content back through :meth:`Bridge.on_file` (ingest first),
   and asks again.
3. A save is never a delete. A missing file is deleted from the document only
   after ``delete_grace_ms`` without reappearing (editors save by delete and
   re-create); a file that turns up empty where the item had content is read
   again after ``empty_grace_ms`` (an in-place save is seen at its truncate).
4. Bad files are reported once per distinct problem and left alone; the
   item's last good state stays, and the file is not overwritten.
5. Two files claiming one id: the one that came second is reported and not
   synced; it is read again when the first one goes away.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from worksync_p2p.core import codec, naming, paths
from worksync_p2p.core.changes import Look, change, changed_fields
from worksync_p2p.core.itemdoc import ItemDoc
from worksync_p2p.core.repo import Ingested, Repo

FILE_ORIGIN = "file"
MAX_DEPARTED = 1024
"""Old paths of moves remembered for editors still open on them (oldest forgotten first)."""

EventKind = Literal["created", "modified", "deleted", "renamed", "conflict"]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class ItemEvent:
    kind: EventKind
    key: str
    path: str | None
    fields: tuple[str, ...]
    origin: str

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "id": self.key,
            "path": self.path,
            "fields": list(self.fields),
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Persist:
    key: str
    update: bytes


@dataclass(frozen=True)
class WriteFile:
    relpath: str
    text: str
    expect: str | None  # hash the file on disk must have; None: it must not exist
    key: str
    origin: str


@dataclass(frozen=True)
class RemoveFile:
    relpath: str
    expect: str
    key: str


@dataclass(frozen=True)
class Reread:
    relpath: str


@dataclass(frozen=True)
class Report:
    relpath: str
    reason: str


@dataclass(frozen=True)
class Tracked:
    """The file at ``relpath`` now holds ``key``'s content hashing to ``digest``."""

    relpath: str
    key: str
    digest: str


@dataclass(frozen=True)
class Untracked:
    relpath: str


@dataclass(frozen=True)
class Emit:
    event: ItemEvent


Effect = Persist | WriteFile | RemoveFile | Reread | Report | Tracked | Untracked | Emit


@dataclass
class FileRecord:
    key: str
    digest: str


class DiskIndex:
    """What we believe each tracked file holds, searchable by path and by item key."""

    def __init__(self) -> None:
        self._by_path: dict[str, FileRecord] = {}
        self._by_key: dict[str, str] = {}

    def __contains__(self, relpath: str) -> bool:
        return relpath in self._by_path

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, relpath: str) -> FileRecord | None:
        return self._by_path.get(relpath)

    def path_of(self, key: str) -> str | None:
        return self._by_key.get(key)

    def set(self, relpath: str, record: FileRecord) -> None:
        self.pop(relpath)
        self._by_path[relpath] = record
        self._by_key[record.key] = relpath

    def pop(self, relpath: str) -> FileRecord | None:
        record = self._by_path.pop(relpath, None)
        if record is not None and self._by_key.get(record.key) == relpath:
            del self._by_key[record.key]
        return record

    def items(self) -> list[tuple[str, FileRecord]]:
        return sorted(self._by_path.items())


@dataclass
class Reused:
    """A path an item came back to (``Bridge.reused``)."""

    key: str
    state: bytes
    """What the path held when the item left it."""
    landed_ms: int | None = None
    """When the write that brought the item back landed; a later write of ours landing
    after the delete grace ends the entry (B86)."""


@dataclass
class Bridge:
    repo: Repo
    delete_grace_ms: int = 150
    empty_grace_ms: int = 100
    max_item_bytes: int = codec.DEFAULT_MAX_BYTES
    disk: DiskIndex = field(default_factory=DiskIndex)
    bad: dict[str, str] = field(default_factory=dict)
    pending_delete: dict[str, int] = field(default_factory=dict)
    reported_gone: set[str] = field(default_factory=set)
    """Those of ``pending_delete`` the watcher has reported and we read missing: a report
    after that means the file came back and went again (B73). Not stored: a restart
    starts the grace over anyway."""
    suspect_empty: dict[str, int] = field(default_factory=dict)
    confirmed_empty: set[str] = field(default_factory=set)
    duplicates: dict[str, str] = field(default_factory=dict)
    base: dict[str, bytes] = field(default_factory=dict)
    strays: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    """Items whose old file vanished while we moved them: key -> (digest we wrote, the
    base the user's copy holds)."""
    moving: dict[str, str] = field(default_factory=dict)
    """Items written at a new path whose old file is still to be removed: key -> old path."""
    leftovers: dict[str, str] = field(default_factory=dict)
    """Old files of a move or delete found half-saved (empty): relpath -> key, merged
    when the save lands."""
    departed: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    """Old files of finished moves: relpath -> (key, the state the file held). An
    editor still open on one may save it back: that save edits the moved item."""
    returning: dict[str, tuple[str, bytes, int]] = field(default_factory=dict)
    """Files we wrote for a peer's rename, missing when the user's own copy took the
    item: relpath -> (key, the state the file showed, until when a save may bring it
    back). One that comes back was being saved: merged, then removed."""
    reused: dict[str, Reused] = field(default_factory=dict)
    """Paths an item came back to, written while their departed entry was open. The
    next save there may have been made on the state the path held (B50). Not stored:
    such a save lands within moments."""
    revived: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    """Items that outlived a delete their grace decided, their file written back: key ->
    (digest we wrote, the state the file showed when it went). It may have moved unread:
    that copy takes the item when it turns up (B48)."""
    awaited: set[str] = field(default_factory=set)
    """Those of ``returning`` seen missing (a save may be half-way): nothing is written
    there until the save lands or the grace ends. Not stored: a restart writes at once."""
    vanished: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Paths a peer's delete found gone, the item's only file: relpath -> (key, until when
    a delete-and-recreate save may still land there). Nothing is written there meanwhile
    (B69): written into the save's gap, the item back from a peer's later edit, our file
    was replaced by the save, which was then diffed against what we wrote and dropped
    the edit it never showed. Not stored: a restart writes at once."""
    seen: dict[str, bytes] = field(default_factory=dict)
    """Items whose file reads as the document, though field values that lost to the
    file's arrived since it was written: key -> the state whose values it showed."""
    looks: dict[str, Look] = field(default_factory=dict)
    """Held items about to take a peer's update: what they said before it, so that
    the event names the fields it changed and the merge decisions it made."""

    # -- remote changes arriving ----------------------------------------------

    def before_remote(self, key: str) -> None:
        """Call before applying a peer's update: remember the state the file matches.

        Until the file is rewritten, a save the user makes is based on that
        state, not on the merged one; ingesting it against the merged state
        would undo the peer's change.
        """
        if key not in self.base and self.disk.path_of(key) is not None:
            state = self.repo.encoded(key)
            if state is not None:
                self.base[key] = state
        item = self.repo.get(key)
        if item is not None and item.alive():
            self.looks[key] = Look.of(item)

    def _remember_base(self, key: str) -> None:
        if key in self.base:
            return  # an older state the file matched is already remembered
        state = self.repo.encoded(key)
        if state is not None:
            self.base.setdefault(key, state)

    def wrote(self, key: str, relpath: str | None = None, now_ms: int | None = None) -> None:
        """The file (at ``relpath``) now holds the document's state again (at ``now_ms``)."""
        if relpath is not None:
            self.returning.pop(relpath, None)  # ours again: a save there is based on this
            if now_ms is not None:
                self._reused_overwritten(relpath, now_ms)
        if key not in self.moving:
            # While the old file of a move is still there, the user's copy is that
            # file, and it holds the base: a save to it must merge from there.
            self.base.pop(key, None)
            self._unseen_shown(key)

    def _reused_overwritten(self, relpath: str, now_ms: int) -> None:
        """A write of ours landed at a path of ``reused``.

        The first is the write that brought the item back: a save half-way there (or a
        stale buffer) may still land on it, made on the state the path held before. A
        later one replaced a file that still held our write (the write is refused
        otherwise); once the delete grace has passed since the first, no half-way save
        is still on its way (the grace periods are that contract), and whatever is saved
        there next was made on what we wrote. Kept, the entry outlived both writes, and
        a save much later (the last tag removed, which turns the tags' block list into
        ``[]``, the line the path's old state showed) read as closer to that old state:
        merged from it, the lines our writes had brought came in a second time (B86,
        seed 124 at 5 x 200). Not at the second write alone: two writes can land in one
        save's gap (soak seed 10577, whose half-way save then lost three edits).
        """
        reused = self.reused.get(relpath)
        if reused is None:
            return
        if reused.landed_ms is None:
            reused.landed_ms = now_ms
        elif now_ms - reused.landed_ms >= self.delete_grace_ms:
            del self.reused[relpath]

    def write_refused(self, relpath: str, key: str, expect: str | None) -> None:
        """The node refused a write: the file still holds what it held, not our render.

        Left as the render's digest, the record would make the retry a no-op
        (and drop the base): the user's save, when it lands, would then be
        ingested against the merged state and undo what it had not seen.
        """
        record = self.disk.get(relpath)
        if record is None or record.key != key:
            return
        if expect is None:
            self.disk.pop(relpath)
        else:
            self.disk.set(relpath, FileRecord(key, expect))

    def removed(self, relpath: str, key: str) -> None:
        """The node removed ``relpath``: nothing on disk holds the old state any more."""
        returning = self.returning.pop(relpath, None)
        if self.moving.get(key) == relpath:
            del self.moving[key]
        elif self.disk.path_of(key) is not None:
            # A stray copy went; the base belongs to the item's own file. A file of
            # ours that gave way to the user's copy (``returning``) held what it showed:
            # an editor still open on it may save it back, an edit made on that state.
            # Without a departed entry that save was a second file of the id, never
            # synced, or taken for a save of another departed path, merged from a
            # state it never showed (B77, as B75's for the exact copy).
            if returning is not None and returning[0] == key:
                self._depart(relpath, key, returning[1])
            return
        # The old file of a move, or the only file of an item a peer deleted (B47): an
        # editor still open on it may save it, an edit made on what the file showed.
        # Only once it is gone: a removal refused for a save keeps the file (B53).
        self._depart(relpath, key, self.base.get(key))
        self.base.pop(key, None)
        self._unseen_shown(key)

    def _unseen_shown(self, key: str) -> None:
        """A file of ours now shows the item: values that lost to the file's are seen.

        Not while the user's own copy of a peer's rename (a stray) is unread: that copy
        shows no more than before, and its save takes its base from the stray, whose
        field values may hold a loser the copy never showed. Dropped here, the save
        replaced that loser unseen (B70).
        """
        if key not in self.strays:
            self.seen.pop(key, None)

    def _depart(self, relpath: str, key: str, state: bytes | None) -> None:
        self.reused.pop(relpath, None)
        self.departed.pop(relpath, None)
        self.departed[relpath] = (key, state)
        while len(self.departed) > MAX_DEPARTED:
            del self.departed[next(iter(self.departed))]

    # -- timers ------------------------------------------------------------

    def deadline_ms(self) -> int | None:
        pending = [*self.pending_delete.values(), *self.suspect_empty.values()]
        pending += [self.returning[p][2] for p in self.awaited if p in self.returning]
        pending += [due for _, due in self.vanished.values()]
        return min(pending) if pending else None

    def tick(self, now_ms: int) -> list[Effect]:
        effects = self.expire_deletes(now_ms)
        for relpath in sorted(self.awaited):
            entry = self.returning.get(relpath)
            if entry is None or entry[2] <= now_ms:
                # Not back within its grace: moved or deleted. A write held for it goes.
                self.awaited.discard(relpath)
                if entry is not None:
                    del self.returning[relpath]
                    item = self.repo.get(entry[0])
                    if item is not None and item.path() == relpath:
                        effects += self.on_remote(entry[0], FILE_ORIGIN)
        for relpath, (key, due) in sorted(self.vanished.items()):
            if due <= now_ms:
                # No save landed: the file stays gone, or the item's write held for it goes.
                del self.vanished[relpath]
                item = self.repo.get(key)
                if item is not None and item.path() == relpath:
                    effects += self.on_remote(key, FILE_ORIGIN)
        for relpath, due in sorted(self.suspect_empty.items()):
            if due <= now_ms:
                del self.suspect_empty[relpath]
                self.confirmed_empty.add(relpath)
                effects.append(Reread(relpath))
        return effects

    def expire_deletes(self, now_ms: int) -> list[Effect]:
        """Decide the pending deletes that are due (and nothing else)."""
        effects: list[Effect] = []
        for relpath, due in sorted(self.pending_delete.items()):
            if due <= now_ms:
                del self.pending_delete[relpath]
                self.reported_gone.discard(relpath)
                effects += self._file_gone(relpath, now_ms)
        return effects

    # -- files -> documents --------------------------------------------------

    def path_of(self, key: str) -> str | None:
        return self.disk.path_of(key)

    def _file_shows(self, key: str) -> bytes | None:
        """The state the item's file shows: its base while the file is behind the
        document, else the document's own."""
        return self.base.get(key) or self.repo.encoded(key)

    def on_file(
        self, relpath: str, data: bytes | None, now_ms: int, *, reported: bool = False
    ) -> list[Effect]:
        """The watcher saw ``relpath``; ``data`` is its content, None if it is gone.

        ``reported``: the watcher reported a change of the path since it was last read
        (not a reread after a refused write, a grace or a start-up).
        """
        if data is not None:
            # There: not gone (the old file of a move too, merged below and perhaps
            # tracked again, must not be deleted when a grace started earlier ends).
            self.pending_delete.pop(relpath, None)
            self.reported_gone.discard(relpath)
            self.vanished.pop(relpath, None)  # the save landed: merged below, then written
        if data != b"":
            # Missing or full: the empty file a grace was about is gone; the next
            # truncate of a save is a new one, with a grace of its own.
            self.confirmed_empty.discard(relpath)
            self.suspect_empty.pop(relpath, None)
        left = self._left_file(relpath, data, now_ms)
        if left is not None:
            return left
        if data is None:
            self._missing(relpath, now_ms, reported=reported)
            return []
        record = self.disk.get(relpath)
        digest = content_hash(data)
        if record is not None and record.digest == digest:
            return []
        if relpath in self.returning:
            return self._returned(relpath, data, now_ms)
        return self._read(relpath, data, digest, now_ms)

    def reading_order(self, found: Sequence[tuple[str, bytes | None]]) -> list[str]:
        """The order to read files found together (a watcher batch's, once its missing
        files are read): a file holding exactly the bytes a missing file of ours held
        goes before the other files claiming its id. It is that file, moved (B72).

        A file claiming the id of an item whose file is missing is taken for that file's
        move, merged from what the missing file showed. Read in the batch's order, a
        stale editor's save of an old path, renamed before it was read (B49's case),
        came before the item's own file, moved in the same batch: taken for the move,
        the stale text undid every edit the missing file showed and it never had
        (soak seed 10451). Read first, the true move holds the item, and the stale save
        is weighed against the departed states as any later file claiming the id is.
        Identical bytes are the one sure sign of where a new file came from; likeness
        alone is not (a first try matched files of a rename storm to the wrong
        departed state, CI seed 58). Every other file keeps its place.
        """
        gone = {r.digest for p in self.pending_delete if (r := self.disk.get(p)) is not None}
        keys: dict[str, str | None] = {}
        moves: dict[str, str] = {}  # key -> the first file holding a missing file's bytes
        for relpath, data in found:
            keys[relpath] = _claims(relpath, data, self.max_item_bytes)
            key = keys[relpath]
            if data is None or key is None:
                continue
            record = self.disk.get(relpath)
            if relpath in self.pending_delete and record is not None and record.key == key:
                # The missing file itself is back (a delete-and-recreate save had its
                # gap seen): it is no move's source, it is the item's file. Read after a
                # stale save renamed in the same batch, that save was taken for its
                # move, merged from what it showed, and undid the lines since the old
                # path left (soak seed 10061 at 5 x 208).
                moves[key] = relpath
            elif content_hash(data) in gone:
                moves.setdefault(key, relpath)
        self._likeliest_moves(found, keys, moves)
        order: list[str] = []
        for relpath, _ in found:
            move = moves.pop(keys[relpath] or "", None)
            if move is not None and move != relpath:
                order.append(move)
            if relpath not in order:
                order.append(relpath)
        return order

    def _likeliest_moves(
        self,
        found: Sequence[tuple[str, bytes | None]],
        keys: dict[str, str | None],
        moves: dict[str, str],
    ) -> None:
        """For an item whose file is missing and claimed by two or more files of the batch,
        none holding the missing file's bytes: the one most like what that file showed.

        The item's file, moved and edited in one watcher batch (a rename, then a
        delete-and-recreate save), holds no departed bytes; a stale editor's save of an
        old path, renamed before it was read, sorted before it. Taken for the move, the
        stale text undid every line the missing file showed and it never had (B85,
        CI seed 21 at 5 x 200). Likeness picks only among files claiming the same missing
        item, each of which is read anyway (CI seed 58's misstep was matching files to
        departed states); a lone claimant, or the missing bytes, is read as before.

        A save at an old path of the item (a departed entry's) is that path's save,
        merged from its state (``_departed_save``), never the move: weighed by likeness
        too, one won over the moved file it sorted before, and the move, read second,
        removed it with its two edits (CI seed 33 at 5 x 100). It keeps its place.
        """
        missing = {r.key for p in self.pending_delete if (r := self.disk.get(p)) is not None}
        claims: dict[str, list[tuple[str, bytes]]] = {}
        rivals: dict[str, int] = {}
        for relpath, data in found:
            key = keys[relpath]
            if data is None or key is None or key not in missing or key in moves:
                continue
            rivals[key] = rivals.get(key, 0) + 1
            held = self.departed.get(relpath)
            if relpath not in self.disk and held is not None and held[0] == key:
                continue
            claims.setdefault(key, []).append((relpath, data))
        for key, files in claims.items():
            shown = self._file_shows(key)
            if rivals[key] < 2 or shown is None:
                continue
            lines = _render_state(shown).splitlines()
            scored = [
                (_likeness(data.decode(errors="replace").splitlines(), lines), -i, relpath)
                for i, (relpath, data) in enumerate(files)
            ]
            moves[key] = max(scored)[2]

    def shows_its_record(self, relpath: str, data: bytes) -> bool:
        """Whether ``on_file(relpath, data)`` would do nothing at all: the file holds
        what we last wrote or read there, and no grace, move or leftover is about
        the path. (The watcher reports every file we write: a first sync's
        thousands of them are told apart here, before any of the rest.)"""
        if data == b"" or relpath in self.pending_delete or relpath in self.leftovers:
            return False
        if relpath in self.suspect_empty or relpath in self.confirmed_empty:
            return False
        record = self.disk.get(relpath)
        return record is not None and record.digest == content_hash(data)

    def _read(self, relpath: str, data: bytes, digest: str, now_ms: int) -> list[Effect]:
        try:
            parsed = codec.parse(data, relpath, self.max_item_bytes)
        except codec.ItemError as error:
            return self._report(relpath, error.reason)
        if self._looks_truncated(relpath, data, now_ms):
            return []  # an in-place save seen at its truncate: read again after the grace
        return self._ingest(relpath, parsed, digest, now_ms)

    def _missing(self, relpath: str, now_ms: int, *, reported: bool = False) -> None:
        self.bad.pop(relpath, None)
        self.duplicates.pop(relpath, None)
        record = self.disk.get(relpath)
        if record is not None:
            # The wait starts when the file vanished; seeing it gone again
            # (a refused write) must not postpone the decision forever (B1).
            due = now_ms + self.delete_grace_ms
            if reported and relpath in self.reported_gone and relpath in self.pending_delete:
                # But a path the watcher reports again after a report read it missing
                # changed since: the file came back and went, a delete-and-recreate
                # save landed and the next one began. The saves are still running, so
                # the grace starts over (B73). Counted from the first gap, it ran out
                # between two saves: the item, back from peers' edits, was written
                # into the last save's gap, and the save, diffed against what we
                # wrote, deleted the edits it never showed. (The first report after a
                # reread found the file gone is the news of that same removal.)
                self.pending_delete[relpath] = due
            else:
                self.pending_delete.setdefault(relpath, due)
            if reported:
                self.reported_gone.add(relpath)
            self._remember_base(record.key)

    def _leftover(self, relpath: str, data: bytes | None, now_ms: int) -> list[Effect]:
        """A file we meant to remove was half-saved; now it is back: merge it."""
        if data == b"" and relpath not in self.confirmed_empty:
            self.suspect_empty.setdefault(relpath, now_ms + self.empty_grace_ms)
            return []
        key = self.leftovers.pop(relpath)
        self.suspect_empty.pop(relpath, None)
        held = self.departed.pop(relpath, None)
        file_base = held[1] if held is not None and held[0] == key else None
        effects = self.on_remove_refused(relpath, key, data, now_ms, file_base=file_base)
        self.confirmed_empty.discard(relpath)
        return effects

    def _left_file(self, relpath: str, data: bytes | None, now_ms: int) -> list[Effect] | None:
        """A file an item left (a move or delete): its effects, None if it is not one."""
        if relpath in self.leftovers:
            return self._leftover(relpath, data, now_ms)
        if relpath in self.departed and relpath not in self.disk and data is not None:
            return self._departed_save(relpath, data, now_ms)
        return None

    def _departed_save(self, relpath: str, data: bytes, now_ms: int) -> list[Effect] | None:
        """A file is back at the old path of a move: None unless it is the moved item.

        A person cannot tell that a peer's rename moved the file they have open;
        their save of it is an edit of the item, made on the state the file held.
        """
        if data == b"" and relpath not in self.confirmed_empty:
            self.suspect_empty.setdefault(relpath, now_ms + self.empty_grace_ms)
            return []  # the truncate of an in-place save: wait for its end
        key, state = self.departed.pop(relpath)
        self.suspect_empty.pop(relpath, None)
        self.confirmed_empty.discard(relpath)
        try:
            parsed = codec.parse(data, relpath, self.max_item_bytes)
        except codec.ItemError:
            return None  # reported as any bad file is
        # An item deleted since takes the save all the same: an edit the delete had not
        # seen, which wins (merged from what the file held, like any other save of it).
        if naming.item_key(parsed.fields, relpath) != key or self.repo.get(key) is None:
            return None
        stray = self.strays.get(key)
        if stray is not None and stray[1] == state:
            del self.strays[key]  # the copy that went missing is back where it was: no move
        return self._merge_left(relpath, key, parsed, content_hash(data), base=state, now_ms=now_ms)

    def _returned(self, relpath: str, data: bytes, now_ms: int) -> list[Effect]:
        """The file we wrote for a peer's rename is back: the user's save of it, based on
        what we wrote, merged into the item (whose file is now the user's copy)."""
        key, state, due = self.returning[relpath]
        if due < now_ms:
            # Not back within the grace: it was moved or deleted; the file here now is new.
            del self.returning[relpath]
            return self.on_file(relpath, data, now_ms)
        if not data:
            return []  # still half-way through the save
        del self.returning[relpath]
        return self.on_remove_refused(relpath, key, data, now_ms, file_base=state)

    def emptied_again(self, relpath: str, now_ms: int) -> None:
        """The empty file is not the one first seen empty: its grace starts over."""
        self.confirmed_empty.discard(relpath)
        if relpath in self.suspect_empty:
            self.suspect_empty[relpath] = now_ms + self.empty_grace_ms

    def _looks_truncated(self, relpath: str, data: bytes, now_ms: int) -> bool:
        # A new file too, at a path no item knows: an in-place save that creates a
        # file is seen empty first, and taken at once it was a second, empty item
        # that peers wrote out. (An untracked file at the path of a path-keyed item
        # is read at once, as before.)
        untracked_known = relpath not in self.disk and naming.item_key(None, relpath) in self.repo
        if data or relpath in self.confirmed_empty or untracked_known:
            self.confirmed_empty.discard(relpath)
            self.suspect_empty.pop(relpath, None)
            return False
        self.suspect_empty.setdefault(relpath, now_ms + self.empty_grace_ms)
        return True

    def _report(self, relpath: str, reason: str) -> list[Effect]:
        if self.bad.get(relpath) == reason:
            return []
        self.bad[relpath] = reason
        return [Report(relpath, reason)]

    def _ingest(
        self, relpath: str, parsed: codec.ParsedItem, digest: str, now_ms: int
    ) -> list[Effect]:
        key = naming.item_key(parsed.fields, relpath)
        owner = self.path_of(key)
        if owner == relpath:
            self.revived.pop(key, None)  # saved by the user: theirs now, not what we wrote
        effects: list[Effect] = []
        if owner is not None and owner != relpath and owner not in self.pending_delete:
            ours = self._file_shows(key)  # what the file we wrote shows
            kept_out = self._second_file(relpath, key, owner, parsed, digest)
            if kept_out is not None:
                return kept_out
            # The user moved the file while a peer's rename was being written:
            # the file we wrote for the peer's path gives way to the user's.
            gone = self.disk.pop(owner)
            if gone is not None:
                effects += [RemoveFile(owner, gone.digest, key), Untracked(owner)]
                if ours is not None:
                    # Saved meanwhile, its removal is refused: merged from what it showed.
                    self.returning[owner] = (key, ours, now_ms + self.delete_grace_ms)
            owner = None
        self.bad.pop(relpath, None)
        self.duplicates.pop(relpath, None)
        record = self.disk.get(relpath)
        if record is not None and record.key != key:
            effects += self._delete_item(record.key, relpath, now_ms, FILE_ORIGIN)
        if owner is not None and owner != relpath:
            self._copy_of_the_users(key, owner, parsed)
            del self.pending_delete[owner]
            self.reported_gone.discard(owner)
            self.disk.pop(owner)
            effects.append(Untracked(owner))
        item = self.repo.get(key)
        before = item.frontmatter() if item is not None and item.alive() else None
        old_path = item.path() if item is not None else None
        self._reused_base(key, relpath, parsed)
        base = self.base.pop(key, None)
        result = self._merge_save(key, relpath, parsed, now_ms, base)
        self.disk.set(relpath, FileRecord(key, digest))
        effects.append(Tracked(relpath, key, digest))
        if result.update is not None:
            effects.append(Persist(key, result.update))
            kind = _kind(before, old_path, relpath)
            changed = changed_fields(before, parsed.fields or {})
            effects.append(Emit(ItemEvent(kind, key, relpath, changed, FILE_ORIGIN)))
        if base is not None:
            # Merged with changes the file had not seen: write the merge back.
            # Until that write lands, the file stands for the save on its base.
            self._keep_file_state(key, result)
            effects += self.on_remote(key, FILE_ORIGIN)
        return effects

    def _reused_base(self, key: str, relpath: str, parsed: codec.ParsedItem) -> None:
        """A save of a path the item came back to: based on what the path held when the
        item left it, when it is closer to that than to what we wrote there (B50).

        An editor open on the path saved it (a delete-and-recreate save half-way, or a
        stale buffer) while the item was away; our write landed in the save's gap, and
        the save, diffed against what we wrote, deleted what it never showed.
        """
        reused = self.reused.pop(relpath, None)
        if reused is None or reused.key != key:
            return
        ours = self._file_shows(key)
        if ours is None or _closer(codec.render(parsed), reused.state, ours):
            self.base[key] = reused.state

    def _merge_save(
        self, key: str, relpath: str, parsed: codec.ParsedItem, now_ms: int, base: bytes | None
    ) -> Ingested:
        """Ingest a save from the state its file was on (``base``), keeping the values it
        never showed (``seen``) as conflicts."""
        seen = self.seen.pop(key, None)
        if base is not None:
            result = self.repo.ingest_from(key, relpath, parsed, now_ms, base, seen=seen)
        else:
            result = self.repo.ingest(key, relpath, parsed, now_ms, seen=seen)
        if seen is not None and (base is not None or result.update is None):
            # Not written back yet (a merge) or nothing taken from the save: the
            # file still has not shown those values.
            self.seen[key] = seen
        return result

    def _keep_file_state(self, key: str, result: Ingested) -> None:
        if result.file_state is not None:
            self.base[key] = result.file_state

    def _reads_as_document(self, key: str) -> None:
        """No write needed: the file already reads as the document.

        The base goes (the text and values are the file's), but a value that
        lost to the file's arrived without showing in it: the next save must not
        take it as replaced. The state the file showed is kept for its fields.
        """
        base = self.base.pop(key, None)
        if base is not None and key not in self.seen and self.repo.hides_values(key, base):
            self.seen[key] = base

    def _copy_of_the_users(self, key: str, owner: str, parsed: codec.ParsedItem) -> None:
        """A file turned up as the move of ``owner``, missing since. When ``owner`` is the
        file we wrote for a peer's rename while the user's copy went missing, the new
        file may be the user's copy rather than ours moved: then ``owner`` may be
        half-way through a delete-and-recreate save, not moved.

        Which one it is: the one whose content it is closer to. The user's copy is
        merged from the state it was saved on; ours, if it comes back within its
        delete grace, is a save based on what we wrote, merged and then removed
        (``_returned``). Taken for a plain move, that save came back as a second
        file of the item, never synced, and the user's copy undid what we wrote.
        """
        stray = self.strays.get(key)
        record = self.disk.get(owner)
        if stray is None or stray[1] is None or record is None or record.digest != stray[0]:
            return
        ours = self._file_shows(key)
        if ours is None or not _closer(codec.render(parsed), stray[1], ours):
            return
        self.returning[owner] = (key, ours, self.pending_delete[owner])
        self.awaited.add(owner)
        self._ours_to_yield(key, owner)

    def _second_file(
        self, relpath: str, key: str, owner: str, parsed: codec.ParsedItem, digest: str
    ) -> list[Effect] | None:
        """A file claiming ``key``, held by ``owner``: its effects when it stays out of the
        item, None when ``owner`` gives way to it."""
        stray = self.strays.get(key)
        if stray is not None and stray[0] == digest:
            # Exactly the file we wrote, moved by the user as their own copy took
            # the item: it holds nothing the item lacks. It goes.
            del self.strays[key]
            # An editor may still be open on it (it was the user's file a moment
            # ago): a save there is an edit of the item, made on what it showed.
            # Without a departed entry that save was a second file of the id (B75).
            record = self.disk.get(owner)
            shown = self._file_shows(key)
            self._depart(relpath, key, shown if record and record.digest == digest else stray[1])
            return [RemoveFile(relpath, digest, key)]
        if self._yields_to(key, owner, parsed):
            return None
        self.duplicates[relpath] = key
        return self._report(relpath, f"id {key!r} is already used by {owner}; not synced")

    def _yields_to(self, key: str, owner: str, parsed: codec.ParsedItem) -> bool:
        """Whether ``owner``, the item's file, gives way to the new file claiming ``key``
        (the base is then the state the new file was saved on)."""
        departed = self._departed_copy(key, owner, codec.render(parsed))
        if departed is not None:
            del self.departed[departed[0]]
            self.base[key] = departed[1]
            return True
        if self._unlike_the_strays_copy(key, owner, parsed):
            return self._revived_copy(key, owner, parsed)
        return self._ours_to_yield(key, owner) or self._revived_copy(key, owner, parsed)

    def _unlike_the_strays_copy(self, key: str, owner: str, parsed: codec.ParsedItem) -> bool:
        """Whether the new file is too unlike the state a stray's copy held to be that copy
        (B76): closer to what ``owner``, the file we wrote, shows than to that state.

        A stray whose copy was deleted, not moved, never turns up: it stays and follows
        our writes (B15) for good. A file claiming the id much later (a stale editor's
        save of an old path, renamed before it was read, that no departed state won:
        tied with a written-back copy's) was given to it, merged from the state of long
        ago, and every line added since went in twice. As with B48's written-back
        copies, the file must not be closer to ours than to the stray's state; a tie
        leaves it the copy, as before.
        """
        stray = self.strays.get(key)
        record = self.disk.get(owner)
        if stray is None or stray[1] is None or record is None or record.digest != stray[0]:
            return False
        ours = self._file_shows(key)
        if ours is None or ours == stray[1]:
            return False
        # Strictly closer to ours by lines. A tie stays the copy's: the two may read the
        # same (a rename since, or values that lost unseen, B70), or the copy changed a
        # line a peer's write changed too (soak seed 10512: both set the assignee; by
        # characters, B56's tie-break, the copy was nearer ours, and taken for no copy
        # it was a second file of the id, never synced).
        lines = codec.render(parsed).splitlines()
        return _state_likeness(lines, ours) > _state_likeness(lines, stray[1])

    def _departed_copy(self, key: str, owner: str, text: str) -> tuple[str, bytes] | None:
        """The old path (and its state) the new file is a save of, moved before we read it:
        a stale editor saved the old path of a peer's rename, then the user renamed that
        file (B49). None unless the file is closer to that state than to ``owner``'s, or
        to the state a user's copy of ``owner`` (a stray, B48's written-back file) holds.

        It is the user's rename of the item, later than the peer's: the item moves to
        it, merged from that state, and ``owner`` gives way (its removal, refused when it
        was saved meanwhile, merges that save too). Taken for a second file of the id,
        the save was never synced; taken for the stray's copy, it was merged from the
        state that copy held, and undid lines it never showed (CI seed 85).
        """
        held = [(p, state) for p, (k, state) in self.departed.items() if k == key and state]
        if not held:
            return None
        own = self._file_shows(key)
        rivals: list[bytes] = []
        record = self.disk.get(owner)
        for entry in (self.strays.get(key), self.revived.get(key)):
            if entry is None or entry[1] is None or record is None:
                continue
            if entry[0] == record.digest:
                rivals.append(entry[1])
        lines = text.splitlines()
        bar = max((_state_likeness(lines, state) for state in rivals), default=-1.0)
        shown = _render_state(own) if own is not None else None
        own_score = _state_likeness(lines, own) if own is not None else -1.0
        best: tuple[float, str, bytes] | None = None
        for relpath, state in reversed(held):  # the latest departure wins a tie
            score = _state_likeness(lines, state)
            # A path that left holding what the item's file shows ties with it: merged
            # from either, the save is the same, so only the other rivals decide (B66).
            # Lost to ``owner``, the save went to the stray of a copy deleted long ago,
            # merged from the state that copy held, and doubled the lines since.
            beats_own = score > own_score or _render_state(state) == shown
            if beats_own and score > bar and (best is None or score > best[0]):
                best = (score, relpath, state)
        return None if best is None else (best[1], best[2])

    def _ours_to_yield(self, key: str, owner: str) -> bool:
        """Whether ``owner`` is a file we wrote while the user's copy went missing."""
        stray = self.strays.get(key)
        record = self.disk.get(owner)
        if stray is None or record is None or record.digest != stray[0]:
            return False
        del self.strays[key]
        if stray[1] is not None:
            # The user's copy was saved on this state, not on the one we wrote.
            self.base[key] = stray[1]
        return True

    def _file_gone(self, relpath: str, now_ms: int) -> list[Effect]:
        record = self.disk.pop(relpath)
        if record is None:
            return []
        effects: list[Effect] = [Untracked(relpath)]
        base = self.base.get(record.key)
        effects += self._delete_item(record.key, relpath, now_ms, FILE_ORIGIN)
        effects += [Reread(p) for p, k in sorted(self.duplicates.items()) if k == record.key]
        item = self.repo.get(record.key)
        if item is not None and item.alive():
            # A peer edited the item after the file was last in sync: the edit
            # wins over the delete, and the file comes back with it. A save that
            # re-creates the file first (the end of a delete-and-recreate save
            # the grace missed) was made on the base: it merges from there.
            if base is not None:
                self.base[record.key] = base
            effects += self.on_remote(record.key, FILE_ORIGIN)
            self._written_back(record.key, base)
        return effects

    def _written_back(self, key: str, base: bytes | None) -> None:
        """The item outlived a delete its grace decided, and its file is written again.

        The file may not have been deleted but moved, its new path unread all grace
        long (saved again and again by delete-and-recreate, say): when that copy
        turns up it is the user's, saved on ``base``, and the file we wrote gives
        way to it (B48). Taken for a second file of the id, it was never synced.
        """
        relpath = self.disk.path_of(key)
        record = self.disk.get(relpath) if relpath is not None else None
        if record is not None and base is not None:
            self.revived.pop(key, None)
            self.revived[key] = (record.digest, base)
            while len(self.revived) > MAX_DEPARTED:
                del self.revived[next(iter(self.revived))]

    def _revived_copy(self, key: str, owner: str, parsed: codec.ParsedItem) -> bool:
        """Whether the file claiming ``key`` is the user's move of the file that ``owner``
        replaced when the item outlived its delete: then the file we wrote gives way.

        Only while ``owner`` holds what we wrote, and only a copy closer to the state the
        vanished file showed than to ours: a file that turns up later with the id (a
        stale editor's save, another move) is not that move, and merged from that old
        state it doubled the text it never showed (CI seed 94).
        """
        entry = self.revived.get(key)
        record = self.disk.get(owner)
        if entry is None or entry[1] is None or record is None or record.digest != entry[0]:
            return False
        ours = self._file_shows(key)
        if ours is None:
            return False
        # Nothing arrived since we wrote it (B52: written at start-up): ours holds nothing
        # the item lacks, and the copy merges from the very state it shows.
        if ours != entry[1] and not _closer(codec.render(parsed), entry[1], ours):
            return False
        del self.revived[key]
        self.base[key] = entry[1]  # the user's copy was saved on this state
        return True

    def restore(self, key: str, origin: str) -> list[Effect]:
        """At start-up, write an item no file on record holds (B52).

        A power cut can take the file's record with it; the user may then have moved
        the file while we were stopped, and be saving the moved copy by
        delete-and-recreate as we start, so it is not read yet. The file we write gives
        way to that copy when it turns up, as B48's does; taken for a second file of
        the id, the copy was never synced.
        """
        effects = self.on_remote(key, origin)
        if self.disk.path_of(key) is not None:  # written (deleted items are not)
            self._written_back(key, self.repo.encoded(key))
        return effects

    def _delete_item(self, key: str, relpath: str, now_ms: int, origin: str) -> list[Effect]:
        # Delete as of the state the file was in when it went: edits that came
        # from peers since are concurrent with the delete, and they win.
        base = self.base.pop(key, None)
        self.seen.pop(key, None)
        self.revived.pop(key, None)
        if base is not None:
            update = self.repo.delete_from(key, base, now_ms)
        else:
            update = self.repo.delete(key, now_ms)
        if update is None:
            return []
        event = ItemEvent("deleted", key, relpath, (), origin)
        return [Persist(key, update), Emit(event)]

    # -- documents -> files --------------------------------------------------

    def on_remote(self, key: str, origin: str) -> list[Effect]:
        """A document changed from elsewhere: the file writes that make disk match it."""
        item = self.repo.get(key)
        old_path = self.path_of(key)
        look = self.looks.pop(key, None)
        text = item.render() if item is not None else None
        if item is None or text is None:
            return self._remove(key, old_path, origin)
        relpath = item.path()
        if relpath is None:
            return []
        reason = paths.unsafe_reason(relpath)
        if reason is not None:
            return self._report(relpath, f"unsafe path from a peer ({reason}); not written")
        if relpath in self.bad or self._awaits_a_save(relpath):
            return []
        if self._held_by_another(relpath, key):
            return []
        effects = self._write(key, relpath, old_path, text, origin)
        return effects if look is None else _told(effects, look, key, item, origin)

    def _awaits_a_save(self, relpath: str) -> bool:
        """Whether a write to ``relpath`` must wait: a vanished or emptied file awaits its
        grace (a save is half-way: its end is merged first), and so does the file we
        wrote for a peer's rename, missing as the user's copy took the item: written
        now, its save would land on top and replace what it never showed (B56). It is
        written when the save lands or the grace ends."""
        if relpath in self.pending_delete or relpath in self.suspect_empty:
            return True
        if relpath in self.vanished:
            return True
        return relpath in self.awaited and relpath in self.returning

    def _held_by_another(self, relpath: str, key: str) -> bool:
        """A live item other than ``key`` owns the file; a deleted one yields it."""
        holder = self.disk.get(relpath)
        if holder is None or holder.key == key:
            return False
        other = self.repo.get(holder.key)
        if other is not None and other.alive():
            return True
        self.disk.pop(relpath)
        self.disk.set(relpath, FileRecord(key, holder.digest))
        return False

    def _write(
        self, key: str, relpath: str, old_path: str | None, text: str, origin: str
    ) -> list[Effect]:
        data = text.encode()
        digest = content_hash(data)
        effects: list[Effect] = []
        self.moving.pop(key, None)  # a move left unfinished (removal refused too often)
        left = self.departed.pop(relpath, None)  # the path is in use again
        if left is not None and left[0] == key and left[1] is not None:
            # The item is back at a path it left: a save there may be on its way,
            # made on what the path held then (B50).
            self.reused[relpath] = Reused(key, left[1])
            while len(self.reused) > MAX_DEPARTED:
                del self.reused[next(iter(self.reused))]
        record = self.disk.get(relpath)
        if record is not None and record.digest == digest:
            self._reads_as_document(key)
        else:
            expect = record.digest if record else None
            effects.append(WriteFile(relpath, text, expect, key, origin))
            self.disk.set(relpath, FileRecord(key, digest))
            stray = self.strays.get(key)
            if stray is not None:
                # Still the file we wrote, to give way when the user's copy turns up.
                self.strays[key] = (digest, stray[1])
            revived = self.revived.get(key)
            if revived is not None:
                # Still ours to give way to the user's move, here or at a peer's new
                # path (B51); the likeness test keeps a much later file out (B48).
                self.revived[key] = (digest, revived[1])
            effects.append(Tracked(relpath, key, digest))
            kind: EventKind = "modified" if record else "created"
            if old_path is not None and old_path != relpath:
                kind = "renamed"
            effects.append(Emit(ItemEvent(kind, key, relpath, (), origin)))
        if old_path is not None and old_path != relpath:
            gone = self.disk.pop(old_path)
            if gone is not None:
                self.moving[key] = old_path
                effects += [RemoveFile(old_path, gone.digest, key), Untracked(old_path)]
        return effects

    def _remove(self, key: str, old_path: str | None, origin: str) -> list[Effect]:
        record = self.disk.pop(old_path) if old_path is not None else None
        if old_path is None or record is None:
            return []
        self.revived.pop(key, None)
        return [
            RemoveFile(old_path, record.digest, key),
            Untracked(old_path),
            Emit(ItemEvent("deleted", key, old_path, (), origin)),
        ]

    def on_remove_refused(
        self,
        relpath: str,
        key: str,
        data: bytes | None,
        now_ms: int,
        file_base: bytes | None = None,
    ) -> list[Effect]:
        """A file we were removing (rename or delete from a peer) was saved meanwhile.

        The save is an edit of the item that the rename or delete had not seen:
        it is merged into the item (at the item's current path, so a rename
        stands and a delete loses), and the stray file goes once merged.
        """
        item = self.repo.get(key)
        if item is None:
            return []
        if data == b"" and relpath not in self.confirmed_empty:
            # Seen at the truncate of an in-place save: merge the save once it
            # has landed (or stayed empty for the grace), not its empty start.
            # The move stays unfinished meanwhile: the save is based on ``base``.
            self.leftovers[relpath] = key
            self.suspect_empty.setdefault(relpath, now_ms + self.empty_grace_ms)
            returning = self.returning.get(relpath)
            base = returning[1] if returning is not None else self.base.get(key)
            if base is not None:
                # Kept with the file: the item's base follows its new file, whose
                # writes drop it (and a restart forgets that the move is open).
                self._depart(relpath, key, base)
                if returning is None and self.moving.get(key) == relpath:
                    self._move_left_behind(key, relpath)
            return []
        if self.moving.get(key) == relpath:
            del self.moving[key]
        if data is None:
            self._found_gone(relpath, key, file_base, now_ms)
            return []
        try:
            parsed = codec.parse(data, relpath, self.max_item_bytes)
        except codec.ItemError as error:
            return self._report(relpath, error.reason)
        # The file's own base when known (another file of the item has the bridge's).
        returning = self.returning.pop(relpath, None)
        if file_base is None and returning is not None:
            file_base = returning[1]
        base = file_base if file_base is not None else self.base.pop(key, None)
        return self._merge_left(relpath, key, parsed, content_hash(data), base=base, now_ms=now_ms)

    def _move_left_behind(self, key: str, relpath: str) -> None:
        """The old file of a move, half-saved, took the base with it (a departed entry):
        the item's base is no longer the old file's to keep (B64).

        ``wrote`` kept the base while the move was open, for a save of the old file;
        but the new file, written already, shows what we wrote, not that base. Kept,
        the base outlived the leftover's merge, and the user's next save of the new
        file, merged from it, inserted again every line that had arrived between the
        base and our write. The old file's save merges from its departed state.
        """
        current = self.disk.path_of(key)
        if current is None or current == relpath:
            return  # the new file's write was refused: nothing shows what we wrote
        del self.moving[key]
        self.base.pop(key, None)
        self.seen.pop(key, None)

    def _found_gone(self, relpath: str, key: str, file_base: bytes | None, now_ms: int) -> None:
        """A file we were removing was gone before we could: the user moved or deleted
        it. If their copy turns up elsewhere, the file we wrote must give way, and their
        copy is merged from the state it was saved on."""
        current = self.disk.path_of(key)
        record = self.disk.get(current) if current is not None else None
        returning = self.returning.pop(relpath, None)
        if record is not None:
            # The state this file showed: its own when known (the item's base
            # is then another file's).
            base = file_base
            if base is None:
                base = returning[1] if returning is not None else self.base.pop(key, None)
            self.strays[key] = (record.digest, base)
            # Or it is half-way through a delete-and-recreate save: back at
            # this path, it is a save of the item, merged, then removed.
            self._depart(relpath, key, base)
        elif current is None:
            # A peer's delete, the item's only file gone first: it departs as a done
            # removal's does (B47). The user's move of it, read once the item outlived
            # the delete elsewhere, is a later move of the item, merged from what it
            # showed; with no departed entry it was a second file of the id (B58). The
            # base stays (a save re-creating the file here is merged from it), and the
            # path waits out the delete grace before the item, back from a peer's edit,
            # is written there: the save may be half-way (B69).
            self._depart(relpath, key, self.base.get(key))
            self.vanished[relpath] = (key, now_ms + self.delete_grace_ms)

    def _merge_left(
        self,
        relpath: str,
        key: str,
        parsed: codec.ParsedItem,
        digest: str,
        *,
        base: bytes | None,
        now_ms: int,
    ) -> list[Effect]:
        """Merge a save found in a file the item left (or is leaving); the file goes."""
        item = self.repo.get(key)
        if item is None:
            return []
        target = item.path() if item.alive() else relpath
        target = target or relpath
        shown = self._file_shows(key)  # what the item's own file shows
        if target != relpath:
            # The item's own file shows the state before this merge until it is
            # rewritten (it may be half-way through a save of its own).
            self._remember_base(key)
        result = self._merge_save(key, target, parsed, now_ms, base)
        effects: list[Effect] = []
        if result.update is not None:
            event = ItemEvent("modified", key, target, (), FILE_ORIGIN)
            effects += [Persist(key, result.update), Emit(event)]
        if target == relpath:
            effects += self._stays(relpath, key, digest, result, shown=shown, now_ms=now_ms)
        else:
            effects.append(RemoveFile(relpath, digest, key))
            # The editor that saved it is still open on this path and may save it
            # again: that save too is based on what this one showed (B46).
            self._depart(relpath, key, result.file_state or self.repo.encoded(key))
        return effects + self.on_remote(key, FILE_ORIGIN)

    def _stays(
        self,
        relpath: str,
        key: str,
        digest: str,
        result: Ingested,
        *,
        shown: bytes | None,
        now_ms: int,
    ) -> list[Effect]:
        """A file the item left is its file again (a rename back to it won meanwhile)."""
        other = self.disk.path_of(key)
        self.disk.set(relpath, FileRecord(key, digest))
        effects: list[Effect] = [Tracked(relpath, key, digest)]
        # The merge may not be written at once (the file awaits a grace):
        # meanwhile the file stands for the save on its base, not the merge.
        self._keep_file_state(key, result)
        gone = self.disk.pop(other) if other is not None and other != relpath else None
        if other is not None and gone is not None:
            # The file the item had elsewhere goes, or it stays tracked for good:
            # two files. Not a move left open: the base is this file's now; that
            # one's own state is kept for its removal (refused: a save there).
            effects += [RemoveFile(other, gone.digest, key), Untracked(other)]
            if shown is not None:
                self.returning[other] = (key, shown, now_ms + self.delete_grace_ms)
        return effects


def _claims(relpath: str, data: bytes | None, max_bytes: int) -> str | None:
    """The item key the file claims; None for a missing or bad one."""
    if not data:
        return None
    try:
        return naming.item_key(codec.parse(data, relpath, max_bytes).fields, relpath)
    except codec.ItemError:
        return None


def _closer(text: str, first: bytes, second: bytes) -> bool:
    """Whether ``text`` is closer to the rendering of state ``first`` than of ``second``.

    By lines; a tie (each differs from ``text`` in the same lines, say the one tags
    line both changed) is decided by characters: taken for ``second`` by default, a
    copy saved on ``first`` was diffed from the other and undid its change (B56).
    """
    one, other = _render_state(first), _render_state(second)
    lines = text.splitlines()
    by_lines = _likeness(lines, one.splitlines()), _likeness(lines, other.splitlines())
    if by_lines[0] != by_lines[1]:
        return by_lines[0] > by_lines[1]
    return _likeness(text, one) > _likeness(text, other)


def _render_state(state: bytes) -> str:
    item = ItemDoc.new(0)
    item.doc.apply_update(state)
    return item.render() or ""


def _likeness(a: Sequence[str], b: Sequence[str]) -> float:
    # No junk heuristic: a long text's spaces and common letters count like the rest.
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _state_likeness(lines: list[str], state: bytes) -> float:
    """How alike ``lines`` and the rendering of ``state`` are, line by line (0 to 1)."""
    return _likeness(lines, _render_state(state).splitlines())


def _told(
    effects: list[Effect], before: Look, key: str, item: ItemDoc, origin: str
) -> list[Effect]:
    """``effects`` with the peer's event naming the fields it changed, and a
    ``conflict`` event when it made the merge rules decide (also when the file
    need not change: the value that lost may be the peer's)."""
    what = change(before, Look.of(item), item)
    out: list[Effect] = []
    for effect in effects:
        if isinstance(effect, Emit) and effect.event.kind in ("modified", "renamed"):
            event = effect.event
            out.append(Emit(ItemEvent(event.kind, key, event.path, what.fields, event.origin)))
        else:
            out.append(effect)
    if what.decided:
        out.append(Emit(ItemEvent("conflict", key, item.path(), what.decided, origin)))
    return out


def _kind(before: dict[str, Any] | None, old_path: str | None, relpath: str) -> EventKind:
    if before is None:
        return "created"
    if old_path is not None and old_path != relpath:
        return "renamed"
    return "modified"
