"""What only the SQLite store has: a file format, bad files, and real crashes."""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from pycrdt import Doc

from worksync_p2p.adapters.sqlite_store import (
    APPLICATION_ID,
    MIGRATIONS,
    PAGE_SIZE_BYTES,
    SCHEMA_VERSION,
    SqliteStore,
    StoreError,
)
from worksync_p2p.ports import FileRecord

from . import store_writer
from .store_writer import KEYS, content, new_doc, random_edit, state

WRITER = Path(store_writer.__file__)


def rows_per_key(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, count(*) FROM updates GROUP BY key").fetchall()
    conn.close()
    return dict(rows)


def integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


# -- the file -----------------------------------------------------------------


def test_new_store_is_a_wal_file_with_our_header(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with SqliteStore(path) as store:
        store.append("k", new_doc().get_update())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE_BYTES,)
    finally:
        conn.close()


def test_auto_compaction_bounds_rows_per_key(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    doc = new_doc()
    rng = random.Random(1)
    with SqliteStore(path, compact_every=8) as store:
        for _ in range(100):
            store.append("k", random_edit(doc, rng))
        store.append_many([("k", random_edit(doc, rng)) for _ in range(20)])
        assert 1 <= rows_per_key(path)["k"] <= 8
        assert content(new_doc(store.load("k"))) == content(doc)
        store.compact("k")
        assert rows_per_key(path) == {"k": 1}


def test_failed_append_many_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SqliteStore(path) as store:
        store.append("a", b"\x00\x00")
        bad: list[tuple[str, bytes]] = [("b", b"\x00\x00"), ("c", object())]  # type: ignore[list-item]
        with pytest.raises(StoreError, match=r"store\.db"):
            store.append_many(bad)
        assert store.keys() == ["a"]
        store.append("d", b"\x00\x00")  # the failed transaction left no lock behind
        assert store.keys() == ["a", "d"]


def test_a_second_connection_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    doc = new_doc()
    with SqliteStore(path) as writer, SqliteStore(path) as reader:
        writer.append("k", random_edit(doc, random.Random(2)))
        assert content(new_doc(reader.load("k"))) == content(doc)


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "store.db") as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        store.load("k")
    with pytest.raises(StoreError, match="closed"):
        store.append("k", b"\x00\x00")


def test_compact_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compact_every"):
        SqliteStore(tmp_path / "store.db", compact_every=0)


# -- schema versions ----------------------------------------------------------

# The schema as version 1 of the code created it, copied here on purpose: the
# migration test must keep opening what old releases wrote, even if someone
# edits MIGRATIONS[0] by mistake (the next test catches that too).
V1_STATEMENTS = (
    "CREATE TABLE updates ("
    " key TEXT NOT NULL,"
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " data BLOB NOT NULL)",
    "CREATE INDEX updates_by_key ON updates (key)",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
)


def _create_v1_store(path: Path, updates: list[tuple[str, bytes]], meta: dict[str, bytes]) -> None:
    """A store file exactly as the version-1 code left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        for statement in V1_STATEMENTS:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
        conn.executemany("INSERT INTO updates (key, data) VALUES (?, ?)", updates)
        conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", meta.items())
    finally:
        conn.close()


def test_applied_migrations_never_change() -> None:
    assert MIGRATIONS[0] == V1_STATEMENTS


def test_a_version_1_store_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    docs = {"a": new_doc(), "b": new_doc()}
    rng = random.Random(21)
    updates = [(key, random_edit(doc, rng)) for _ in range(5) for key, doc in docs.items()]
    _create_v1_store(path, updates, {"clock": b"\x01\x02"})

    with SqliteStore(path, compact_every=3) as store:
        assert store.keys() == ["a", "b"]
        for key, doc in docs.items():
            assert content(new_doc(store.load(key))) == content(doc)
            assert state(new_doc(store.load(key))) == state(doc)
        assert store.get_meta("clock") == b"\x01\x02"
        assert store.load_files() == {}
        store.put_files([("a.md", FileRecord("a", "abc", 10, 20))])
        store.append("a", random_edit(docs["a"], rng))  # v1 rows take new writes
    with SqliteStore(path) as store:  # already version 2: opens as is
        assert store.load_files() == {"a.md": FileRecord("a", "abc", 10, 20)}
        assert content(new_doc(store.load("a"))) == content(docs["a"])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    finally:
        conn.close()
    assert integrity(path) == ["ok"]


# -- load_all streams ------------------------------------------------------------


def _wal_reset(path: Path) -> bool:
    """Whether a TRUNCATE checkpoint succeeds now: no reader holds a WAL snapshot."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        busy: int = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.close()
    return busy == 0


def test_load_all_takes_no_transaction_on_the_store_connection(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SqliteStore(path) as store, SqliteStore(path) as other:
        store.append_many((f"k{i}", b"\x00\x00") for i in range(10))
        rows = store.load_all()
        assert next(rows)[0] == "k0"
        assert store._conn is not None  # a test hook, not an API
        assert not store._conn.in_transaction
        other.append("k5", b"\x00\x00")  # another writer is not blocked either
        store.append("k99", b"\x00\x00")
        assert not _wal_reset(path)  # the half-read iterator holds its snapshot
        del rows  # abandoned: the snapshot goes with it
        assert _wal_reset(path)
        for key, _ in store.load_all():
            if key == "k3":
                break
        assert _wal_reset(path)
        store.append("k100", b"\x00\x00")
        assert store.load("k100") == b"\x00\x00"


def test_load_all_holds_one_key_at_a_time(tmp_path: Path) -> None:
    """Reading the first key must not read the whole store into memory."""
    row_bytes, keys = 100_000, 60  # 6 MB of rows
    with SqliteStore(tmp_path / "store.db") as store:
        for i in range(keys):
            store.append(f"k{i:02}", random.Random(i).randbytes(row_bytes))
        tracemalloc.start()
        try:
            rows = store.load_all()
            first = next(rows)
            second = next(rows)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (first[0], second[0]) == ("k00", "k01")
        assert peak < 10 * row_bytes
        assert sum(len(data) for _, data in rows) == (keys - 2) * row_bytes


def test_closing_the_store_ends_its_load_all(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    store.append_many([("a", b"\x00\x00"), ("b", b"\x00\x00")])
    rows = store.load_all()
    done = store.load_all()
    assert next(rows)[0] == "a"
    assert [key for key, _ in done] == ["a", "b"]
    assert next(done, None) is None
    store.close()
    with pytest.raises(StoreError, match="closed during load_all"):
        next(rows)
    with pytest.raises(StoreError, match="closed"):
        store.load_all()
    assert _wal_reset(path)


# -- bad files ----------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(3).randbytes(8192))


def _text(path: Path) -> None:
    path.write_text("# not a database\n" * 200)


def _truncated(path: Path) -> None:
    with SqliteStore(path) as store:
        store.append_many((f"k{i}", b"\x00\x00" * 500) for i in range(200))
    data = path.read_bytes()
    path.write_bytes(data[:4096] + b"\xff" * 4096)


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, jpeg BLOB)")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize("spoil", [_garbage, _text, _truncated, _foreign, _newer])
def test_unusable_file_raises_store_error_naming_it(
    tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    path = tmp_path / "spoiled.db"
    spoil(path)
    with pytest.raises(StoreError) as caught:
        _open_and_read(path)
    assert str(path) in str(caught.value)


def _open_and_read(path: Path) -> None:
    # A file with a sound header may fail only when its pages are read.
    with SqliteStore(path) as store:
        list(store.load_all())


def test_directory_in_place_of_the_file_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.mkdir()
    with pytest.raises(StoreError, match=r"store\.db"):
        SqliteStore(path)


# -- kill -9 ------------------------------------------------------------------


class LineReader:
    """Lines from a child's pipe, each read bounded by a deadline (no sleeps)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buffer = b""
        self._eof = False

    def readline(self, deadline: float) -> str | None:
        """The next line, or None at end of file; TimeoutError past the deadline."""
        while b"\n" not in self._buffer and not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the writer went silent")
            readable, _, _ = select.select([self._fd], [], [], remaining)
            if readable:
                chunk = os.read(self._fd, 1 << 16)
                self._eof = not chunk
                self._buffer += chunk
        if not self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


Batch = list[tuple[str, bytes]]


@dataclass
class Round:
    """What one writer process reported before it was killed."""

    acked: list[Batch] = field(default_factory=list)
    in_flight: Batch | None = None
    lines: list[str] = field(default_factory=list)

    def take(self, line: str) -> None:
        self.lines.append(line)
        word, *rest = line.split()
        if word == "write":
            assert self.in_flight is None, self.lines[-5:]
            self.in_flight = [_pair(item) for item in rest[1:]]
        elif word == "ack":
            assert self.in_flight is not None, self.lines[-5:]
            self.acked.append(self.in_flight)
            self.in_flight = None
        else:
            assert word in ("opening", "ready", "done"), self.lines[-20:]


def _pair(item: str) -> tuple[str, bytes]:
    key, _, data = item.partition(":")
    return key, bytes.fromhex(data)


@dataclass(frozen=True)
class Kill:
    """When a writer dies: the parent kills it once it acked ``after`` writes
    (0: while it opens the store), and with ``mid_write`` once it announced the
    next write too; or the writer kills itself at SQLite instruction ``at_op``.
    """

    after: int = 0
    mid_write: bool = False
    at_op: int | None = None

    def due(self, round_: Round) -> bool:
        if self.at_op is not None or not round_.lines:
            return False
        in_flight = round_.in_flight is not None
        return len(round_.acked) >= self.after and (in_flight or not self.mid_write)


def run_and_kill(db: Path, compact_every: int, seed: int, kill: Kill) -> Round:
    """Run one writer on ``db`` until it dies as ``kill`` says; what it reported."""
    round_ = Round()
    deadline = time.monotonic() + 30
    command = [sys.executable, str(WRITER), str(db), str(compact_every), str(seed)]
    if kill.at_op is not None:
        command.append(str(kill.at_op))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        reader = LineReader(proc.stdout)
        while not kill.due(round_):
            line = reader.readline(deadline)
            if line is None:
                break
            round_.take(line)
        if kill.at_op is None:
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL, round_.lines[-20:]
        # What the writer printed before it died is still in the pipe.
        while (line := reader.readline(deadline)) is not None:
            round_.take(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    return round_


def replay(batches: list[Batch]) -> dict[str, Doc[Any]]:
    docs = {key: new_doc() for key in KEYS}
    for batch in batches:
        for key, update in batch:
            docs[key].apply_update(update)
    return docs


def same(stored: dict[str, Doc[Any]], expected: dict[str, Doc[Any]]) -> bool:
    return all(
        state(stored[key]) == state(expected[key])
        and content(stored[key]) == content(expected[key])
        for key in KEYS
    )


KILLS: list[Callable[[random.Random], Kill]] = [
    lambda rng: Kill(after=rng.randint(1, 60)),
    lambda rng: Kill(after=rng.randint(1, 60), mid_write=True),
    lambda rng: Kill(at_op=rng.randint(1, 30_000)),
]


def test_kill_9_loses_nothing_acked_and_no_half_write(tmp_path: Path) -> None:
    """Several writers in a row on one store, each killed at a seeded moment.

    The first dies while it opens the store. compact_every=3 makes about every
    third write per key a compaction, so the kills land in compactions too.
    After each kill: the file is sound, every acked write is there, and the one
    in flight is there whole or not at all.
    """
    db = tmp_path / "store.db"
    rng = random.Random(20240611)
    persisted: list[Batch] = []
    run_and_kill(db, 3, rng.randrange(2**32), Kill())
    assert integrity(db) == ["ok"]
    for number in range(12):
        kill = KILLS[number % len(KILLS)](rng)
        round_ = run_and_kill(db, 3, rng.randrange(2**32), kill)
        assert len(round_.acked) >= kill.after
        persisted += round_.acked

        assert integrity(db) == ["ok"]
        with SqliteStore(db, compact_every=3) as store:
            stored = {key: new_doc(store.load(key)) for key in KEYS}
        if round_.in_flight is not None and not same(stored, replay(persisted)):
            persisted.append(round_.in_flight)
        assert same(stored, replay(persisted)), f"round {number}: stored != acked writes"
        assert all(count <= 3 for count in rows_per_key(db).values())
    assert sum(len(batch) for batch in persisted) > 100


# -- every crash point of one write -------------------------------------------


def _snapshot_at_every_instruction(store: SqliteStore, into: Path) -> list[Path]:
    """Copy the store's files at each SQLite VM instruction: what a kill -9 there would leave.

    The copies read what SQLite has handed to the OS, which is exactly what
    survives the death of the process.
    """
    copies: list[Path] = []
    files = [store.path.with_name(store.path.name + suffix) for suffix in ("", "-wal", "-shm")]

    def copy() -> int:
        target = into / f"{len(copies):04}"
        target.mkdir()
        for source in files:
            if source.exists():
                (target / source.name).write_bytes(source.read_bytes())
        copies.append(target / store.path.name)
        return 0

    assert store._conn is not None  # a test hook, not an API
    store._conn.set_progress_handler(copy, 1)
    return copies


def _everything(path: Path) -> list[tuple[str, bytes]]:
    with SqliteStore(path) as store:
        return list(store.load_all())


@pytest.mark.parametrize("bulk", [False, True])
def test_a_kill_at_any_instruction_leaves_the_write_whole_or_absent(
    tmp_path: Path, bulk: bool
) -> None:
    path = tmp_path / "live" / "store.db"
    rng = random.Random(13)
    docs = {"a": new_doc(), "b": new_doc()}
    with SqliteStore(path, compact_every=3) as store:
        for _ in range(3):  # "a" at the limit: the next write to it compacts
            store.append_many((key, random_edit(doc, rng)) for key, doc in docs.items())
        before = list(store.load_all())
        batch = [("a", random_edit(docs["a"], rng))]
        batch += [("b", random_edit(docs["b"], rng)) for _ in range(4)] if bulk else []
        copies = _snapshot_at_every_instruction(store, tmp_path)
        store.append_many(batch)
        store._conn.set_progress_handler(None, 1)  # type: ignore[union-attr]
        after = list(store.load_all())
    assert before != after
    assert len(copies) > 20
    committed: list[bool] = []
    for copy in copies:
        assert integrity(copy) == ["ok"], copy
        found = _everything(copy)
        assert found in (before, after), copy
        committed.append(found == after)
    # Old state up to the commit, new state from it on: never a step back.
    assert committed == sorted(committed)
    assert committed.count(False) > 20
