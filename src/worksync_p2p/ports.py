"""Ports: the ``typing.Protocol`` seams that adapters implement.

The core and the node are written against these interfaces only. Each port has
a real adapter in ``worksync_p2p.adapters`` and a fake in ``simulations.fakes``,
and one conformance suite in ``tests/adapters`` runs against both.

Only :class:`Store` lives here so far; Clock, Transport, Discovery and
FileSystem join it as their adapters are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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

    def close(self) -> None:
        """Release the store; idempotent. Any other call afterwards is an error."""
        ...
