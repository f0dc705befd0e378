"""Ports: the ``typing.Protocol`` seams that adapters implement.

The core and the node are written against these interfaces only. Each port has
a real adapter in ``worksync_p2p.adapters`` and a fake in ``simulations.fakes``,
and one conformance suite in ``tests/adapters`` runs against both.

Only :class:`Store` lives here so far; Clock, Transport, Discovery and
FileSystem join it as their adapters are written.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FileRecord:
    """What the store remembers of one file of the folder, so that start-up can
    skip a file whose ``stat`` still matches without reading it.

    ``size`` and ``mtime_ns`` are the ``stat`` of the file right after we last
    ingested or wrote it; ``digest`` is the content hash of those bytes.
    """

    key: str  # item key the file holds
    digest: str  # content hash of the bytes we last ingested or wrote
    size: int
    mtime_ns: int


class Store(Protocol):
    """Durable, append-only log of CRDT updates per document key, plus small metadata.

    A key is an item id; its value is the sequence of Yjs updates appended to
    it, which the store may merge (compact) at any time, because merging
    updates never changes the document they describe. Calls are synchronous
    and must be serialised by the caller (one call at a time).
    """

    def append(self, key: str, update: bytes) -> None:
        """Add one update to ``key``; durable (committed) when this returns."""
        ...

    def append_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Add many ``(key, update)`` pairs in one transaction: all or none survive a crash."""
        ...

    def load(self, key: str) -> bytes | None:
        """All updates of ``key`` merged into one, or ``None`` for an unknown key."""
        ...

    def load_all(self) -> Iterator[tuple[str, bytes]]:
        """Every key with its merged update, ordered by key (code point order).

        The snapshot is taken by the call, not by the iteration: writes made
        while the caller iterates do not show, and the caller may write while
        it iterates. Keys are produced one at a time, so the whole store need
        not fit in memory; an iterator dropped half-way holds nothing back.
        """
        ...

    def keys(self) -> list[str]:
        """Every key holding at least one update, sorted."""
        ...

    def compact(self, key: str) -> None:
        """Replace the updates of ``key`` by their merge, atomically."""
        ...

    def remove(self, key: str) -> None:
        """Forget ``key`` and all its updates; a no-op for an unknown key."""
        ...

    def load_files(self) -> dict[str, FileRecord]:
        """Every file record, by the file's path relative to the folder, sorted by path.

        File records are independent of the updates: ``remove`` keeps them.
        """
        ...

    def put_files(self, records: Iterable[tuple[str, FileRecord]]) -> None:
        """Insert or replace ``(relpath, record)`` pairs in one transaction; durable on return."""
        ...

    def drop_files(self, relpaths: Iterable[str]) -> None:
        """Forget the records of ``relpaths`` in one transaction; unknown paths are ignored."""
        ...

    def get_meta(self, name: str) -> bytes | None:
        """A small value of node state (clocks, cursors), or ``None`` if never set."""
        ...

    def set_meta(self, name: str, value: bytes) -> None:
        """Store a small value of node state; durable when this returns."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Writes made inside become durable together, with one commit."""
        ...

    def sync(self) -> None:
        """Make every update so far survive a power cut, not only a crash of the process.

        A no-op when no update (``append``, ``append_many``, ``remove``) was
        written since the last sync; when one was, every write so far survives.

        Inside a batch, the writes so far are committed first (they survive
        together) and the rest of the batch is a new transaction.
        """
        ...

    def close(self) -> None:
        """Release the store; idempotent. Any other call afterwards is an error."""
        ...


@dataclass(frozen=True)
class Stat:
    """What start-up compares to skip an unchanged file: size and mtime."""

    size: int
    mtime_ns: int

    def matches(self, record: FileRecord) -> bool:
        return (self.size, self.mtime_ns) == (record.size, record.mtime_ns)


class WriteOutcome(enum.Enum):
    WRITTEN = "written"
    CHANGED = "changed"  # the file is not what the caller expected: ingest it first
    UNSAFE = "unsafe"  # a symlink or a folder outside the workspace is in the way


class FileSystem(Protocol):
    """The workspace folder as the node sees it; paths are relative, with '/'."""

    def list_items(self) -> list[str]:
        """Every item file's relative path, sorted."""
        ...

    def stat(self, relpath: str) -> Stat | None: ...

    def read(self, relpath: str, max_bytes: int) -> bytes | None:
        """At most ``max_bytes + 1`` bytes, None when the file is gone."""
        ...

    def write_if(
        self,
        relpath: str,
        text: str,
        expect: str | None,
        durable: Callable[[], object] | None = None,
    ) -> WriteOutcome:
        """Atomically replace the file if its content still hashes to ``expect``.

        ``durable`` runs before the new content can be seen under any name,
        and only when it is about to be (not for a refused write).
        """
        ...

    def remove_if(self, relpath: str, expect: str) -> bool: ...
