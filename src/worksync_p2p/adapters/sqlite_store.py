"""The local store: every document's CRDT updates in one SQLite file.

Why not ``pycrdt.store.SQLiteYStore``: it is async-only, it is one store object
per document with its own connection and start/stop lifecycle, and it squashes
updates by wall-clock timestamps. We hold 10,000+ documents and keep a
deterministic core, so our store is one synchronous ``sqlite3`` connection and
one table of updates for all documents, squashed by row count instead of time.

Rules:

* ``append`` commits before it returns; ``append_many`` is one transaction.
  Commits are not fsynced (``synchronous = NORMAL``) except by ``sync``,
  which the node calls before anything it stored leaves it (see there).
* A key never holds more than ``compact_every`` rows after a write: the write
  that crosses the limit merges the key's rows into one in the same
  transaction, so a crash leaves either the old rows or the merged row.
* Reads are single statements, so each sees one committed snapshot, except
  ``load_all``: it streams rows from its own connection inside one read
  transaction (see :class:`_Snapshot`), so it holds one key's rows at a time
  and the caller may write on the store while it iterates.
* File records (``files``) live beside the updates and are written the same
  way: one transaction per call, committed on return.
* Every SQLite failure leaves as :class:`StoreError` naming the file.
* Not thread-safe: callers serialise access (the node owns the one store).
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Self

from pycrdt import merge_updates

from worksync_p2p.ports import FileRecord

SCHEMA_VERSION = 2
APPLICATION_ID = 0x77735032  # "wsP2", marks the file as ours in its header
BUSY_TIMEOUT_MS = 5_000
# A work item's update is typically 1-5 KB. With 4 KB pages a 2.3 KB row has a
# page to itself (the file is ~1.8x the data); 8 KB pages hold three (~1.3x).
PAGE_SIZE_BYTES = 8_192

# MIGRATIONS[v] takes the schema from user_version v to v + 1. Statements, not a
# script: executescript() would commit the migration transaction half-way.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE updates ("
        " key TEXT NOT NULL,"
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " data BLOB NOT NULL)",
        # seq is the rowid, which every index carries: this index also serves
        # ORDER BY key, seq without a sort.
        "CREATE INDEX updates_by_key ON updates (key)",
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    ),
    (
        # relpath -> what we last ingested or wrote there: start-up skips a
        # file whose stat still matches. Looked up by relpath only.
        "CREATE TABLE files ("
        " relpath TEXT PRIMARY KEY,"
        " key TEXT NOT NULL,"
        " digest TEXT NOT NULL,"
        " size INTEGER NOT NULL,"
        " mtime_ns INTEGER NOT NULL"
        ") WITHOUT ROWID",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


class StoreError(Exception):
    """The store file cannot be opened or used; the message names the file."""


class SqliteStore:
    """:class:`worksync_p2p.ports.Store` on one SQLite file (WAL mode)."""

    def __init__(self, path: Path, compact_every: int = 64) -> None:
        if compact_every < 1:
            raise ValueError(f"compact_every must be at least 1, not {compact_every}")
        self.path = path
        self.compact_every = compact_every
        self._conn: sqlite3.Connection | None = _open(path)
        self._batching = False
        self._wal_linked = False  # the folder fsynced since the WAL was opened
        self._unsynced = False  # updates written since the last sync, which a power cut may drop
        # The load_all iterators still open, closed with the store.
        self._snapshots: weakref.WeakSet[_Snapshot] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, compact_every={self.compact_every})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- updates --------------------------------------------------------------

    def append(self, key: str, update: bytes) -> None:
        with self._write(updates=True) as conn:
            conn.execute("INSERT INTO updates (key, data) VALUES (?, ?)", (key, update))
            self._compact_if_long(conn, key)

    def append_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        rows = list(items)
        if not rows:
            return
        with self._write(updates=True) as conn:
            conn.executemany("INSERT INTO updates (key, data) VALUES (?, ?)", rows)
            for key in sorted({key for key, _ in rows}):
                self._compact_if_long(conn, key)

    def load(self, key: str) -> bytes | None:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT data FROM updates WHERE key = ? ORDER BY seq", (key,)
            ).fetchall()
        return _merged([data for (data,) in rows]) if rows else None

    def load_all(self) -> Iterator[tuple[str, bytes]]:
        self._connection()  # a closed store refuses, as every other call does
        snapshot = _Snapshot(self.path)
        self._snapshots.add(snapshot)
        return snapshot

    def keys(self) -> list[str]:
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT key FROM updates ORDER BY key").fetchall()
        return [key for (key,) in rows]

    def fingerprint(self) -> bytes:
        """Changes whenever the updates change: row count and highest ``seq``.

        ``seq`` is AUTOINCREMENT and rows are never updated in place, so any
        insert (append, compaction) raises the highest seq, and deletes alone
        lower the count. Values derived from the updates (the digest index)
        saved with it are still valid while it is unchanged.
        """
        with self._read() as conn:
            count, top = conn.execute(
                "SELECT count(*), coalesce(max(seq), 0) FROM updates"
            ).fetchone()
        return int(count).to_bytes(8, "big") + int(top).to_bytes(8, "big")

    def compact(self, key: str) -> None:
        with self._write() as conn:
            _compact_rows(conn, key)

    def remove(self, key: str) -> None:
        with self._write(updates=True) as conn:
            conn.execute("DELETE FROM updates WHERE key = ?", (key,))

    # -- file records ---------------------------------------------------------

    def load_files(self) -> dict[str, FileRecord]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT relpath, key, digest, size, mtime_ns FROM files ORDER BY relpath"
            ).fetchall()
        return {
            relpath: FileRecord(key, digest, size, mtime_ns)
            for relpath, key, digest, size, mtime_ns in rows
        }

    def put_files(self, records: Iterable[tuple[str, FileRecord]]) -> None:
        rows = [(relpath, r.key, r.digest, r.size, r.mtime_ns) for relpath, r in records]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO files (relpath, key, digest, size, mtime_ns) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (relpath) DO UPDATE SET key = excluded.key,"
                " digest = excluded.digest, size = excluded.size, mtime_ns = excluded.mtime_ns",
                rows,
            )

    def drop_files(self, relpaths: Iterable[str]) -> None:
        rows = [(relpath,) for relpath in relpaths]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany("DELETE FROM files WHERE relpath = ?", rows)

    # -- metadata -------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, name: str, value: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def close(self) -> None:
        for snapshot in list(self._snapshots):
            snapshot.abort()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with _translated(self.path, "close"):
                conn.close()

    # -- internals ------------------------------------------------------------

    def _fsync_wal(self) -> None:
        wal = Path(f"{self.path}-wal")
        if not wal.exists():
            return  # not in WAL mode (a file system without shared memory): commits sync
        _fsync(wal)
        if not self._wal_linked:
            # The WAL may have been created by this open: its name must survive too.
            _fsync(self.path.parent)
            self._wal_linked = True

    def _compact_if_long(self, conn: sqlite3.Connection, key: str) -> None:
        (count,) = conn.execute("SELECT count(*) FROM updates WHERE key = ?", (key,)).fetchone()
        if count > self.compact_every:
            _compact_rows(conn, key)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with _translated(self.path, "read"):
            yield conn

    @contextmanager
    def _write(self, *, updates: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        self._unsynced |= updates
        if self._batching:
            with _translated(self.path, "write"):
                yield conn
            return
        with _translated(self.path, "write"), _transaction(conn):
            yield conn

    @contextmanager
    def durable_batch(self) -> Iterator[None]:
        """A :meth:`batch` whose commit is on disk when it returns (see :meth:`sync`)."""
        assert not self._batching, "a durable batch cannot join an outer batch"
        with self.batch():
            yield
        self.sync()

    def sync(self) -> None:
        """Make every update so far survive a power cut; a no-op when none is new.

        File records and meta written since the last update need no fsync of
        their own: one lost with the power is rebuilt at start-up from the
        file and the documents. Whatever else was committed before the fsync
        is on disk with the updates.

        ``synchronous = NORMAL`` makes a commit survive kill -9 but not a power
        cut. The node calls this before a file write or an update sent to
        peers, so nothing leaves it that its store could still lose: one fsync
        of the WAL then covers every commit since the last one. Inside a
        batch, the writes so far are committed first and the batch goes on in
        a new transaction.
        """
        if not self._unsynced:
            return
        conn = self._connection()
        with _translated(self.path, "sync"):
            if self._batching:
                conn.execute("COMMIT")
            try:
                self._fsync_wal()
            except OSError as exc:
                raise StoreError(f"cannot sync store {self.path}: {exc}") from exc
            finally:
                if self._batching:
                    conn.execute("BEGIN IMMEDIATE")
        self._unsynced = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction (one commit, not one each).

        A save costs an update, a file record and sometimes more; committing
        them together keeps the save-to-event path short. Nested batches join
        the outer one.
        """
        if self._batching:
            yield
            return
        conn = self._connection()
        with _translated(self.path, "write"), _transaction(conn):
            self._batching = True
            try:
                yield
            finally:
                self._batching = False


def _compact_rows(conn: sqlite3.Connection, key: str) -> None:
    """Replace the rows of ``key`` by one merged row; the caller holds the transaction."""
    rows = conn.execute("SELECT data FROM updates WHERE key = ? ORDER BY seq", (key,)).fetchall()
    if len(rows) <= 1:
        return
    merged = merge_updates(*(data for (data,) in rows))
    conn.execute("DELETE FROM updates WHERE key = ?", (key,))
    conn.execute("INSERT INTO updates (key, data) VALUES (?, ?)", (key, merged))


def _merged(updates: list[bytes]) -> bytes:
    return updates[0] if len(updates) == 1 else merge_updates(*updates)


class _Snapshot:
    """The iterator of ``load_all``: one read transaction on a connection of its own.

    Why a connection of its own: SQLite has one transaction per connection, so
    a read transaction held on the store's connection would make the caller's
    next write fail (or, nested, stay uncommitted) until the iteration ends.
    In WAL mode a reader on another connection sees the last commit before its
    first read and never blocks a writer, nor is blocked by one.

    The snapshot is fixed in ``__init__`` (``BEGIN`` plus the query's first
    step), so it is the store as of the ``load_all`` call. The rows stream from
    the cursor, ordered by the index on (key, seq), and each key's rows are
    merged as soon as they are read: memory holds one key's rows, not the
    store. The connection closes, ending the transaction, when the rows run
    out, when ``close`` is called, when the store is closed, or when the
    iterator is garbage-collected: an iterator abandoned half-way keeps a read
    mark in the WAL (checkpoints cannot pass it) only as long as it lives.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._aborted = False
        with _translated(path, "read"):
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            with _translated(path, "read"):
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA query_only = 1")
                conn.execute("BEGIN")
                # execute() runs the query to its first row: the snapshot is now.
                cursor = conn.execute("SELECT key, data FROM updates ORDER BY key, seq")
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._groups: Iterator[tuple[str, Iterator[tuple[str, bytes]]]]
        self._groups = groupby(cursor, key=itemgetter(0))

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[str, bytes]:
        if self._conn is None:
            if self._aborted:
                raise StoreError(f"store {self._path} was closed during load_all")
            raise StopIteration
        try:
            with _translated(self._path, "read"):
                group = next(self._groups, None)
                if group is not None:
                    key, rows = group
                    return key, _merged([data for _, data in rows])
        except BaseException:
            self.close()
            raise
        self.close()
        raise StopIteration

    def close(self) -> None:
        """End the read transaction and release the connection; idempotent."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._groups = iter(())
            # Closing ends the read transaction (there is nothing to undo).
            with _translated(self._path, "close"):
                conn.close()

    def abort(self) -> None:
        """Close because the store closed: a later ``next`` raises StoreError."""
        if self._conn is not None:
            self._aborted = True
            self.close()

    def __del__(self) -> None:
        # Best effort on collection: never raise from a finaliser.
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.close()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a second process waits in
    # busy_timeout instead of failing half-way through with SQLITE_BUSY.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def _fsync(path: Path) -> None:
    """Flush a file's written pages to the disk, through a descriptor of our own.

    SQLite writes each commit's frames into the WAL before COMMIT returns
    (nothing is buffered in the process), so fsyncing the file afterwards is
    what ``synchronous = FULL`` would have done at each commit since.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _translated(path: Path, action: str) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {action} store {path}: {exc}") from exc


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of store {path}: {exc}") from exc
    with _translated(path, "open"):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        with _translated(path, "open"):
            _configure(conn)
            _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Takes effect only while the file is still empty, i.e. before WAL mode.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
    # The first read of the header: a file that is not SQLite fails here.
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    # NORMAL in WAL mode writes each commit's frames to the WAL before COMMIT
    # returns but fsyncs only at checkpoints. Written frames sit in the OS page
    # cache, which outlives the process: kill -9 or a crash of ours loses
    # nothing committed. Only an OS crash or power loss can drop the last few
    # commits, and WAL checksums still keep the file consistent.
    conn.execute("PRAGMA synchronous = NORMAL")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if _header(conn) == (APPLICATION_ID, SCHEMA_VERSION):
        return
    with _transaction(conn):
        # Read again under the write lock: another process may have migrated.
        application_id, version = _header(conn)
        if application_id != APPLICATION_ID and (application_id != 0 or _has_tables(conn)):
            raise StoreError(f"{path} is an SQLite file but not a worksync store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path} has schema version {version}; this program knows"
                f" up to {SCHEMA_VERSION}: upgrade worksync-p2p"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return application_id, version


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' LIMIT 1")
    return row.fetchone() is not None
