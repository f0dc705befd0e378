"""In-memory fakes of the ports, for the deterministic simulator.

Each fake keeps the contract of its real adapter (the conformance suites in
``tests/adapters`` run against both) and adds the hooks a simulation needs to
inject faults, such as :meth:`MemoryStore.crash`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from pycrdt import merge_updates

from worksync_p2p.ports import FileRecord


@dataclass
class _Undo:
    """What one write changed, so that a crash can take it back.

    ``None`` marks a key, name or path that did not exist before the write.
    """

    updates: dict[str, list[bytes] | None] = field(default_factory=dict)
    meta: dict[str, bytes | None] = field(default_factory=dict)
    files: dict[str, FileRecord | None] = field(default_factory=dict)


class MemoryStore:
    """:class:`worksync_p2p.ports.Store` in memory, with crash injection.

    Compaction follows the same rule as ``SqliteStore`` (a key is merged into
    one row when a write leaves it with more than ``compact_every`` rows), so
    a simulation walks through the same states as the real node.

    The durability model mirrors SQLite in WAL mode with ``synchronous=NORMAL``:
    a process crash loses nothing that was written, while an OS crash or power
    loss may lose every write since the last ``sync`` (``crash(drop_last=True)``
    drops them all, the worst case of losing the last few commits). A write is
    one call or one batch: an ``append_many`` (or ``put_files``, ``drop_files``)
    is lost whole or kept whole. ``close`` and ``sync`` flush; a ``sync``
    inside a batch flushes the batch so far, and the rest of it is a new write.
    """

    def __init__(self, compact_every: int = 64) -> None:
        if compact_every < 1:
            raise ValueError(f"compact_every must be at least 1, not {compact_every}")
        self.compact_every = compact_every
        self._updates: dict[str, list[bytes]] = {}
        self._meta: dict[str, bytes] = {}
        self._files: dict[str, FileRecord] = {}
        self._unflushed: list[_Undo] = []  # writes since the last sync, oldest first
        self._batch: _Undo | None = None
        self._closed = False

    # -- fault injection ------------------------------------------------------

    def crash(self, drop_last: bool = False) -> None:
        """The process died; the store comes back with what the disk kept.

        With ``drop_last``, every write since the last flush (``sync``,
        ``close``) is lost, as after a power cut. The store is open again afterwards.
        """
        if drop_last:
            for undo in reversed(self._unflushed):
                self._restore(undo)
        self._unflushed = []
        self._closed = False

    def reopen(self) -> None:
        """Open a closed store again with all its contents, like reopening the file."""
        self.crash(drop_last=False)

    def row_count(self, key: str) -> int:
        """How many rows ``key`` holds (0 if unknown): for checks on compaction."""
        return len(self._updates.get(key, ()))

    # -- Store ----------------------------------------------------------------

    def append(self, key: str, update: bytes) -> None:
        self.append_many([(key, update)])

    def append_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        rows = [(key, bytes(update)) for key, update in items]
        self._check_open()
        if not rows:
            return
        undo = self._begin_write()
        for key, update in rows:
            self._remember(undo, key)
            self._updates.setdefault(key, []).append(update)
        for key in sorted({key for key, _ in rows}):
            if len(self._updates[key]) > self.compact_every:
                self._merge_rows(key)

    def load(self, key: str) -> bytes | None:
        self._check_open()
        rows = self._updates.get(key)
        return None if rows is None else _merged(rows)

    def load_all(self) -> Iterator[tuple[str, bytes]]:
        self._check_open()
        snapshot = [(key, tuple(self._updates[key])) for key in sorted(self._updates)]
        return ((key, _merged(rows)) for key, rows in snapshot)

    def keys(self) -> list[str]:
        self._check_open()
        return sorted(self._updates)

    def compact(self, key: str) -> None:
        self._check_open()
        if self.row_count(key) > 1:
            self._remember(self._begin_write(), key)
            self._merge_rows(key)

    def remove(self, key: str) -> None:
        self._check_open()
        if key in self._updates:
            self._remember(self._begin_write(), key)
            del self._updates[key]

    def load_files(self) -> dict[str, FileRecord]:
        self._check_open()
        return dict(sorted(self._files.items()))

    def put_files(self, records: Iterable[tuple[str, FileRecord]]) -> None:
        rows = list(records)
        self._check_open()
        if not rows:
            return
        undo = self._begin_write()
        for relpath, record in rows:
            undo.files.setdefault(relpath, self._files.get(relpath))
            self._files[relpath] = record

    def drop_files(self, relpaths: Iterable[str]) -> None:
        known = [relpath for relpath in relpaths if relpath in self._files]
        self._check_open()
        if not known:
            return  # like SQLite: a transaction that changes nothing writes nothing
        undo = self._begin_write()
        for relpath in known:
            undo.files.setdefault(relpath, self._files.pop(relpath, None))

    def get_meta(self, name: str) -> bytes | None:
        self._check_open()
        return self._meta.get(name)

    def set_meta(self, name: str, value: bytes) -> None:
        self._check_open()
        undo = self._begin_write()
        undo.meta.setdefault(name, self._meta.get(name))
        self._meta[name] = bytes(value)

    def batch(self) -> AbstractContextManager[None]:
        """Writes inside are one transaction: a power cut keeps all or none of them."""
        if self._batch is not None:
            return nullcontext()
        return self._batched()

    @contextmanager
    def _batched(self) -> Iterator[None]:
        # Unflushed from its first write on: a batch that writes nothing is no write.
        self._batch = _Undo()
        try:
            yield
        except BaseException:
            # Rolled back, like SQLite's transaction: back to the last sync, if any.
            undo = self._batch
            self._restore(undo)
            if self._unflushed and self._unflushed[-1] is undo:
                self._unflushed.pop()
            raise
        finally:
            self._batch = None

    def sync(self) -> None:
        # As SqliteStore: only updates call for the fsync, which then keeps every write.
        if not any(undo.updates for undo in self._unflushed):
            return
        if self._batch is not None:
            self._batch = _Undo()
        self._unflushed = []

    def close(self) -> None:
        self._unflushed = []
        self._closed = True

    # -- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryStore is closed")

    def _begin_write(self) -> _Undo:
        if self._batch is not None:
            if not self._unflushed or self._unflushed[-1] is not self._batch:
                self._unflushed.append(self._batch)
            return self._batch
        self._unflushed.append(_Undo())
        return self._unflushed[-1]

    def _remember(self, undo: _Undo, key: str) -> None:
        if key not in undo.updates:
            rows = self._updates.get(key)
            undo.updates[key] = None if rows is None else list(rows)

    def _merge_rows(self, key: str) -> None:
        self._updates[key] = [merge_updates(*self._updates[key])]

    def _restore(self, undo: _Undo) -> None:
        for key, rows in undo.updates.items():
            if rows is None:
                self._updates.pop(key, None)
            else:
                self._updates[key] = rows
        for name, value in undo.meta.items():
            if value is None:
                self._meta.pop(name, None)
            else:
                self._meta[name] = value
        for relpath, record in undo.files.items():
            if record is None:
                self._files.pop(relpath, None)
            else:
                self._files[relpath] = record


def _merged(rows: list[bytes] | tuple[bytes, ...]) -> bytes:
    return rows[0] if len(rows) == 1 else merge_updates(*rows)
