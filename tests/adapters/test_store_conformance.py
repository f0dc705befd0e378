"""One contract, two stores: every test here runs on SqliteStore and on MemoryStore."""

from __future__ import annotations

import random
from collections.abc import Iterator
from operator import methodcaller
from pathlib import Path
from typing import Any, Protocol

import pytest
from pycrdt import Doc, Map

from simulations.fakes import MemoryStore
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.ports import FileRecord, Store

from .store_writer import content, new_doc, random_edit, state


class Backend(Protocol):
    def open(self, compact_every: int = 64) -> Store: ...

    def reopen(self, store: Store) -> Store:
        """The same store after a clean close and a fresh open."""
        ...


class SqliteBackend:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "nested" / "dir" / "store.db"
        self.opened: list[SqliteStore] = []

    def open(self, compact_every: int = 64) -> Store:
        store = SqliteStore(self.path, compact_every=compact_every)
        self.opened.append(store)
        return store

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, SqliteStore)
        store.close()
        return self.open(store.compact_every)


class MemoryBackend:
    def open(self, compact_every: int = 64) -> Store:
        return MemoryStore(compact_every=compact_every)

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, MemoryStore)
        store.close()
        store.reopen()
        return store


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    sqlite = SqliteBackend(tmp_path)
    yield sqlite
    for store in sqlite.opened:
        store.close()


def edits(doc: Doc[Any], count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [random_edit(doc, rng) for _ in range(count)]


def loaded(update: bytes | None) -> Doc[Any]:
    assert update is not None
    return new_doc(update)


def assert_same_doc(update: bytes | None, expected: Doc[Any]) -> None:
    doc = loaded(update)
    assert content(doc) == content(expected)
    assert state(doc) == state(expected)


def test_empty_store(backend: Backend) -> None:
    store = backend.open()
    assert store.load("nope") is None
    assert store.keys() == []
    assert list(store.load_all()) == []
    assert store.get_meta("nope") is None


def test_one_update_round_trips(backend: Backend) -> None:
    store = backend.open()
    doc = new_doc()
    update = edits(doc, 1, seed=1)[0]
    store.append("item-1", update)
    assert_same_doc(store.load("item-1"), doc)


def test_many_updates_merge_into_the_same_document(backend: Backend) -> None:
    store = backend.open()
    doc = new_doc()
    for update in edits(doc, 200, seed=2):
        store.append("item-1", update)
    assert_same_doc(store.load("item-1"), doc)
    assert content(doc)[0]  # the seeded edits did write text


def test_nested_map_round_trips(backend: Backend) -> None:
    store = backend.open()
    doc = new_doc()
    before = doc.get_state()
    fields = doc.get("fields", type=Map)
    fields["title"] = "Sync demo"
    fields["owner"] = Map({"name": "ana", "team": "core"})
    store.append("item-1", doc.get_update(before))
    back = loaded(store.load("item-1"))
    assert back.get("fields", type=Map).to_py() == {
        "title": "Sync demo",
        "owner": {"name": "ana", "team": "core"},
    }


def test_append_many_stores_every_item(backend: Backend) -> None:
    store = backend.open()
    docs = {f"item-{i}": new_doc() for i in range(5)}
    rng = random.Random(3)
    batch = [(key, random_edit(doc, rng)) for _ in range(4) for key, doc in docs.items()]
    store.append_many(iter(batch))
    store.append_many([])
    assert store.keys() == sorted(docs)
    for key, doc in docs.items():
        assert_same_doc(store.load(key), doc)


def test_load_all_is_ordered_by_key_and_complete(backend: Backend) -> None:
    store = backend.open()
    keys = ["item-9", "item-10", "Zeta", "alpha", "é-accent", "日本", "a b", ""]
    docs = {key: new_doc() for key in keys}
    rng = random.Random(4)
    for key in random.Random(5).sample(keys, len(keys)) * 3:
        store.append(key, random_edit(docs[key], rng))
    everything = list(store.load_all())
    assert [key for key, _ in everything] == sorted(keys)
    assert store.keys() == sorted(keys)
    for key, update in everything:
        assert_same_doc(update, docs[key])


def test_load_all_is_a_snapshot_taken_when_called(backend: Backend) -> None:
    store = backend.open()
    doc = new_doc()
    first, second = edits(doc, 2, seed=6)
    store.append("a", first)
    snapshot = store.load_all()
    store.append("a", second)
    store.append("b", second)
    assert [(key, content(loaded(update))) for key, update in snapshot] == [
        ("a", content(loaded(first)))
    ]


def test_load_all_abandoned_half_way_holds_no_write_back(backend: Backend) -> None:
    store = backend.open()
    docs = {f"item-{i}": new_doc() for i in range(4)}
    rng = random.Random(16)
    for key, doc in docs.items():
        store.append(key, random_edit(doc, rng))
    for key, _ in store.load_all():
        if key == "item-1":
            break
    store.append("item-9", edits(new_doc(), 1, seed=17)[0])
    store.set_meta("clock", b"1")
    assert store.keys() == [*sorted(docs), "item-9"]

    half_read = store.load_all()  # kept alive, half read, while the caller writes
    assert next(half_read)[0] == "item-0"
    store.append("item-0", random_edit(docs["item-0"], rng))
    store.append_many([("item-1", random_edit(docs["item-1"], rng)), ("item-5", b"\x00\x00")])
    store.put_files([("a.md", FileRecord("item-0", "d", 1, 2))])
    store.remove("item-2")
    assert [key for key, _ in half_read] == ["item-1", "item-2", "item-3", "item-9"]
    assert store.keys() == ["item-0", "item-1", "item-3", "item-5", "item-9"]
    assert_same_doc(store.load("item-0"), docs["item-0"])
    store = backend.reopen(store)
    assert_same_doc(store.load("item-1"), docs["item-1"])


def test_compact_keeps_the_document(backend: Backend) -> None:
    store = backend.open()
    doc = new_doc()
    for update in edits(doc, 50, seed=7):
        store.append("item-1", update)
    before = store.load("item-1")
    store.compact("item-1")
    store.compact("item-1")
    store.compact("unknown")
    assert_same_doc(store.load("item-1"), doc)
    assert content(loaded(before)) == content(doc)
    assert store.keys() == ["item-1"]


@pytest.mark.parametrize("compact_every", [1, 3])
def test_auto_compaction_keeps_the_document(backend: Backend, compact_every: int) -> None:
    store = backend.open(compact_every=compact_every)
    docs = {"a": new_doc(), "b": new_doc()}
    rng = random.Random(8)
    for i in range(60):
        key = "ab"[i % 2]
        if i % 5 == 0:
            store.append_many([(key, random_edit(docs[key], rng)) for _ in range(4)])
        else:
            store.append(key, random_edit(docs[key], rng))
    for key, doc in docs.items():
        assert_same_doc(store.load(key), doc)


def test_remove_forgets_only_that_key(backend: Backend) -> None:
    store = backend.open()
    docs = {"a": new_doc(), "b": new_doc()}
    for key, doc in docs.items():
        for update in edits(doc, 3, seed=9):
            store.append(key, update)
    store.remove("a")
    store.remove("never-there")
    assert store.load("a") is None
    assert store.keys() == ["b"]
    assert [key for key, _ in store.load_all()] == ["b"]
    assert_same_doc(store.load("b"), docs["b"])
    fresh = new_doc()
    store.append("a", edits(fresh, 1, seed=10)[0])
    assert_same_doc(store.load("a"), fresh)


def test_meta_is_separate_from_documents(backend: Backend) -> None:
    store = backend.open()
    store.set_meta("clock", b"\x00\x01")
    store.set_meta("peer", b"abc")
    store.set_meta("clock", b"\x02")
    store.set_meta("empty", b"")
    assert store.get_meta("clock") == b"\x02"
    assert store.get_meta("peer") == b"abc"
    assert store.get_meta("empty") == b""
    assert store.keys() == []


def test_reopen_restores_every_document_and_meta(backend: Backend) -> None:
    store = backend.open(compact_every=4)
    docs = {f"item-{i:02}": new_doc() for i in range(12)}
    rng = random.Random(11)
    for _ in range(10):
        for key, doc in docs.items():
            store.append(key, random_edit(doc, rng))
    store.set_meta("clock", b"42")
    before = list(store.load_all())
    store = backend.reopen(store)
    assert list(store.load_all()) == before
    assert store.get_meta("clock") == b"42"
    for key, doc in docs.items():
        assert_same_doc(store.load(key), doc)


# -- file records ----------------------------------------------------------------


def record(number: int, key: str | None = None) -> FileRecord:
    return FileRecord(
        key=key or f"item-{number}",
        digest=f"{number:064x}",
        size=number * 37,
        mtime_ns=1_700_000_000_123_456_789 + number,
    )


def test_file_records_round_trip(backend: Backend) -> None:
    store = backend.open()
    assert store.load_files() == {}
    records = {
        "notes/b.md": record(1),
        "a.md": record(2),
        "日本/é accent.md": record(3),
        "empty.md": FileRecord("item-4", "", 0, 0),
        "old.md": FileRecord("item-5", "x", 2**40, -(10**18)),  # mtime before 1970
    }
    store.put_files(iter(records.items()))
    store.put_files([])
    loaded_files = store.load_files()
    assert loaded_files == records
    assert list(loaded_files) == sorted(records)
    assert store.keys() == []  # records are not documents
    assert list(store.load_all()) == []


def test_put_files_overwrites_the_record_of_a_path(backend: Backend) -> None:
    store = backend.open()
    store.put_files([("a.md", record(1)), ("b.md", record(2))])
    store.put_files([("a.md", record(3, key="item-1")), ("c.md", record(4))])
    store.put_files([("b.md", record(5)), ("b.md", record(6))])  # the later pair wins
    assert store.load_files() == {
        "a.md": record(3, key="item-1"),
        "b.md": record(6),
        "c.md": record(4),
    }


def test_drop_files_forgets_those_paths_only(backend: Backend) -> None:
    store = backend.open()
    store.put_files((f"{i}.md", record(i)) for i in range(5))
    store.drop_files(iter(["1.md", "3.md", "never.md", "1.md"]))
    store.drop_files([])
    store.drop_files(["never.md"])
    assert store.load_files() == {"0.md": record(0), "2.md": record(2), "4.md": record(4)}
    store.put_files([("1.md", record(7))])
    assert store.load_files()["1.md"] == record(7)


def test_file_records_are_independent_of_documents(backend: Backend) -> None:
    store = backend.open()
    store.append("item-1", edits(new_doc(), 1, seed=18)[0])
    store.put_files([("a.md", record(1))])
    store.remove("item-1")
    assert store.load_files() == {"a.md": record(1)}
    store.drop_files(["a.md"])
    store.append("item-2", edits(new_doc(), 1, seed=19)[0])
    assert store.keys() == ["item-2"]
    assert store.load_files() == {}


def test_reopen_restores_file_records(backend: Backend) -> None:
    store = backend.open()
    store.put_files((f"dir/{i}.md", record(i)) for i in range(20))
    store.drop_files(["dir/3.md"])
    store.put_files([("dir/4.md", record(40))])
    expected = store.load_files()
    store = backend.reopen(store)
    assert store.load_files() == expected
    assert len(expected) == 19
    assert expected["dir/4.md"] == record(40)


def test_ten_thousand_file_records(backend: Backend) -> None:
    """The start-up load: 10,000 records in one put and one load (timed in benchmarks)."""
    store = backend.open()
    records = {f"items/{i:05}.md": record(i) for i in range(10_000)}
    store.put_files(records.items())
    assert store.load_files() == records
    store.drop_files(list(records)[::2])
    assert len(store.load_files()) == 5_000


def test_close_is_idempotent(backend: Backend) -> None:
    store = backend.open()
    store.close()
    store.close()


def test_sqlite_and_memory_agree_byte_for_byte(tmp_path: Path) -> None:
    """The same seeded operations leave both stores with identical contents."""
    memory = MemoryStore(compact_every=4)
    with SqliteStore(tmp_path / "s.db", compact_every=4) as sqlite:
        for step, operation in enumerate(_random_operations(random.Random(12), 300)):
            operation(sqlite)
            operation(memory)
            assert list(sqlite.load_all()) == list(memory.load_all()), step
            assert sqlite.keys() == memory.keys()
            assert sqlite.load_files() == memory.load_files()
        for key in ("a", "b", "c", "d"):
            assert sqlite.get_meta(key) == memory.get_meta(key)


def _random_operations(rng: random.Random, count: int) -> Iterator[methodcaller]:
    docs = {key: new_doc() for key in ("a", "b", "c", "d")}
    for _ in range(count):
        key = rng.choice(sorted(docs))
        roll = rng.random()
        if roll < 0.03:
            yield methodcaller("remove", key)
        elif roll < 0.06:
            paths = [f"{k}.md" for k in rng.sample(sorted(docs), 2)]
            yield methodcaller("put_files", [(p, record(rng.randrange(99), key)) for p in paths])
        elif roll < 0.08:
            yield methodcaller("drop_files", [f"{k}.md" for k in rng.sample(sorted(docs), 2)])
        elif roll < 0.1:
            yield methodcaller("compact", key)
        elif roll < 0.2:
            yield methodcaller("set_meta", key, rng.randbytes(4))
        elif roll < 0.3:
            batch = [(k, random_edit(docs[k], rng)) for k in rng.sample(sorted(docs), 2) * 3]
            yield methodcaller("append_many", batch)
        else:
            yield methodcaller("append", key, random_edit(docs[key], rng))


# -- the fake's crash model -----------------------------------------------------


def test_memory_crash_keeps_every_write_unless_told_to_drop_one() -> None:
    store = MemoryStore(compact_every=2)
    doc = new_doc()
    for update in edits(doc, 5, seed=13):
        store.append("a", update)
    store.crash()
    assert_same_doc(store.load("a"), doc)


def test_memory_crash_drops_every_write_since_the_last_sync() -> None:
    store = MemoryStore(compact_every=2)
    doc = new_doc()
    first, second, third = edits(doc, 3, seed=14)
    store.append_many([("a", first), ("b", first)])
    store.sync()
    store.set_meta("clock", b"1")
    store.append_many([("a", second), ("a", third), ("c", second)])  # compacts "a"
    store.crash(drop_last=True)
    assert store.keys() == ["a", "b"]
    assert store.row_count("a") == 1
    assert_same_doc(store.load("a"), new_doc(first))
    assert store.get_meta("clock") is None
    store.crash(drop_last=True)  # nothing unsynced is left to lose
    assert store.keys() == ["a", "b"]


def test_memory_crash_after_remove_or_meta_restores_the_old_value() -> None:
    store = MemoryStore()
    update = edits(new_doc(), 1, seed=15)[0]
    store.append("a", update)
    store.sync()
    store.remove("a")
    store.crash(drop_last=True)
    assert store.load("a") == update
    store.set_meta("clock", b"1")
    store.set_meta("clock", b"2")
    store.crash(drop_last=True)
    assert store.get_meta("clock") is None


def test_memory_crash_takes_back_file_writes_whole() -> None:
    store = MemoryStore()
    store.put_files([("a.md", record(1)), ("b.md", record(2))])
    store.sync()  # no update written: nothing to sync, as with SQLite
    store.crash(drop_last=True)
    assert store.load_files() == {}
    store.put_files([("a.md", record(1)), ("b.md", record(2))])
    store.append("a", edits(new_doc(), 1, seed=18)[0])
    store.sync()
    store.put_files([("a.md", record(3)), ("c.md", record(4))])
    store.crash(drop_last=True)
    assert store.load_files() == {"a.md": record(1), "b.md": record(2)}
    store.drop_files(["a.md", "b.md", "a.md"])
    store.drop_files(["never.md"])  # changes nothing: not a write
    store.crash(drop_last=True)
    assert store.load_files() == {"a.md": record(1), "b.md": record(2)}
    store.put_files([("d.md", record(6))])
    store.crash()
    assert "d.md" in store.load_files()


def test_memory_close_flushes() -> None:
    store = MemoryStore()
    store.set_meta("clock", b"1")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get_meta("clock")
    store.crash(drop_last=True)
    assert store.get_meta("clock") == b"1"


def half_synced_batch(store: Store, first: bytes, second: bytes) -> None:
    """A batch that syncs after "a" and fails after "b"."""
    with store.batch():
        store.append("a", first)
        store.sync()
        store.append("b", second)
        raise RuntimeError("the rest of the batch fails")


def test_sync_inside_a_batch_keeps_what_came_before_when_the_rest_fails(
    backend: Backend,
) -> None:
    store = backend.open()
    first, second = edits(new_doc(), 2, seed=16)
    with pytest.raises(RuntimeError, match="the rest"):
        half_synced_batch(store, first, second)
    store.sync()  # nothing new: a no-op
    assert store.keys() == ["a"]
    store = backend.reopen(store)
    assert store.keys() == ["a"]
    assert store.load("a") == first


def test_memory_sync_makes_every_write_survive_a_power_cut() -> None:
    store = MemoryStore()
    first, second, third = edits(new_doc(), 3, seed=17)
    store.append("a", first)
    store.sync()
    store.crash(drop_last=True)
    assert store.load("a") == first
    with store.batch():
        store.append("b", second)
        store.sync()  # the batch so far is kept; the rest is unsynced
        store.append("c", third)
    store.crash(drop_last=True)
    assert store.keys() == ["a", "b"]
