"""A first sync's batches on the receiving side: LocalNode.receive_many, the batched
file writer, and the digest index saved between runs. Real files, real SQLite."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.nodehelpers import Remote, wait_until
from worksync_p2p.adapters import files, renderpool
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec
from worksync_p2p.core import digest as dg
from worksync_p2p.core import syncproto as sp
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.core.itemdoc import ItemDoc
from worksync_p2p.node import LocalNode, NetOptions, running
from worksync_p2p.ports import WriteOutcome
from worksync_p2p.workspace import init

COUNT = 40
LOOPBACK = "127.0.0.1"


def item_text(n: int) -> str:
    return f"---\nid: item-{n}\nstatus: open\ntags: [a, b]\n---\nbody of item {n}\n"


def remote_items(count: int, start: int = 0) -> tuple[Remote, list[tuple[str, bytes]]]:
    """Another replica's items as the full updates a SYNC2 carries."""
    remote = Remote()
    updates = []
    for n in range(start, start + count):
        key, relpath = f"item-{n}", f"item-{n}.md"
        parsed = codec.parse(item_text(n).encode(), relpath)
        update = remote.repo.ingest(key, relpath, parsed, 1_000).update
        assert update is not None
        updates.append((key, update))
    return remote, updates


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    workspace = init(tmp_path / "b").workspace
    with SqliteStore(workspace.store_path) as store:
        local = LocalNode(workspace, workspace.load_config(), store)
        local.load()
        local.reconcile()
        yield local


def disk(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.glob("*.md"))}


def test_a_batch_of_new_items_is_written_whole_and_recorded(node: LocalNode) -> None:
    _, updates = remote_items(COUNT)
    node.receive_many(updates, "peer-b")
    assert disk(node.root) == {f"item-{n}.md": item_text(n) for n in range(COUNT)}
    records = node.store.load_files()
    assert sorted(records) == sorted(f"item-{n}.md" for n in range(COUNT))
    for relpath, record in records.items():
        assert record.digest == content_hash((node.root / relpath).read_bytes())
        on_disk = (node.root / relpath).stat()  # what start-up compares to skip the file
        assert (record.size, record.mtime_ns) == (on_disk.st_size, on_disk.st_mtime_ns)
    assert sorted(node.store.keys()) == sorted(key for key, _ in updates)
    assert not [p for p in os.listdir(node.root) if p.endswith(".worksync-tmp")]


def test_a_batch_rendered_by_the_workers_is_written_as_the_daemon_renders(
    node: LocalNode,
) -> None:
    pool = renderpool.shared()
    if pool is None:
        pytest.skip("one core: the daemon renders every batch itself")
    assert pool.start(30.0), "the render workers did not start"
    before = pool.rendered
    _, updates = remote_items(COUNT)
    node.receive_many(updates, "peer-b")
    assert pool.rendered == before + COUNT
    assert disk(node.root) == {f"item-{n}.md": item_text(n) for n in range(COUNT)}
    assert sorted(node.store.load_files()) == sorted(f"item-{n}.md" for n in range(COUNT))


def test_a_batch_rendered_by_the_workers_is_adopted_without_documents(node: LocalNode) -> None:
    """An item the workers read is kept with its reads; its document is made only
    when something else needs it (here a local edit, which merges as usual)."""
    pool = renderpool.shared()
    if pool is None:
        pytest.skip("one core: the daemon renders every batch itself")
    assert pool.start(30.0), "the render workers did not start"
    _, updates = remote_items(COUNT)
    node.receive_many(updates, "peer-b")
    items = [node.repo.get(key) for key, _ in updates]
    assert all(item is not None and item.is_asleep for item in items)
    assert [node.repo.digest(key) for key, _ in updates] == [dg.item_hash(u) for _, u in updates]
    edited = item_text(3).replace("status: open", "status: done")
    (node.root / "item-3.md").write_text(edited)
    node.on_relpaths({"item-3.md"})
    item = node.repo.get(updates[3][0])
    assert item is not None
    assert not item.is_asleep
    assert item.render() == edited
    assert disk(node.root)["item-4.md"] == item_text(4)


def _made_at_home(node: LocalNode, monkeypatch: pytest.MonkeyPatch, read: str) -> list[str | None]:
    """The keys ``ItemDoc.<read>`` ran for while a batch rendered by the workers was
    received (a spy: the real method still runs)."""
    pool = renderpool.shared()
    if pool is None:
        pytest.skip("one core: the daemon renders every batch itself")
    assert pool.start(30.0), "the render workers did not start"
    _, updates = remote_items(COUNT)
    at_home: list[str | None] = []
    original = getattr(ItemDoc, read)

    def counted(item: ItemDoc) -> str | None:
        at_home.append(item.key)
        return cast("str | None", original(item))

    monkeypatch.setattr(ItemDoc, read, counted)
    node.receive_many(updates, "peer-b")
    assert disk(node.root) == {f"item-{n}.md": item_text(n) for n in range(COUNT)}
    return at_home


def test_the_workers_renders_are_not_made_again_at_home(
    node: LocalNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's text is kept for the update it rendered: the daemon's documents,
    which applied the same full updates, encode back to them and need no render."""
    assert _made_at_home(node, monkeypatch, "_render") == []


def test_the_workers_paths_are_not_read_again_at_home(
    node: LocalNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker reads each item's path with its render (decoding every meta cell
    once); the daemon takes it with the render instead of decoding them again."""
    assert _made_at_home(node, monkeypatch, "_read_path") == []


def test_a_batch_not_asked_ahead_gets_its_own_renders(node: LocalNode) -> None:
    """The renders of a batch asked for ahead (the next batch on one link) are
    still unread when another batch (another link's) is sent to the workers:
    each batch's files hold their own items."""
    pool = renderpool.shared()
    if pool is None:
        pytest.skip("one core: the daemon renders every batch itself")
    assert pool.start(30.0), "the render workers did not start"
    _, this = remote_items(COUNT)
    _, coming = remote_items(COUNT, COUNT)
    node.prefetch(coming)
    node.receive_many(this, "peer-b")
    assert disk(node.root) == {f"item-{n}.md": item_text(n) for n in range(COUNT)}
    node.receive_many(coming, "peer-b")
    assert disk(node.root) == {f"item-{n}.md": item_text(n) for n in range(2 * COUNT)}


def test_a_batch_mixing_known_and_new_items_applies_all(node: LocalNode) -> None:
    remote, updates = remote_items(COUNT)
    node.receive_many(updates[:10], "peer-b")
    edit = remote.edit(node, "item-3", lambda text: text.replace("status: open", "status: done"))
    node.receive_many([("item-3", edit), *updates[10:], updates[12]], "peer-b")
    assert len(disk(node.root)) == COUNT
    assert "status: done" in (node.root / "item-3.md").read_text()


def test_a_file_that_took_the_name_first_is_ingested_not_replaced(node: LocalNode) -> None:
    _, updates = remote_items(3)
    mine = "---\nid: item-1\nstatus: mine\n---\nwritten here first\n"
    (node.root / "item-1.md").write_text(mine)
    node.receive_many(updates, "peer-b")
    text = (node.root / "item-1.md").read_text()
    assert "written here first" in text  # the user's file was merged, not clobbered
    assert (node.root / "item-0.md").read_text() == item_text(0)
    assert (node.root / "item-2.md").read_text() == item_text(2)


def test_a_bad_update_keeps_the_good_ones_before_it(node: LocalNode) -> None:
    _, updates = remote_items(6)
    batch = [*updates[:3], ("item-bad", b"\xff\x00garbage"), *updates[3:]]
    with pytest.raises(ValueError, match="decode"):
        node.receive_many(batch, "peer-b")
    assert sorted(disk(node.root)) == ["item-0.md", "item-1.md", "item-2.md"]
    assert sorted(node.store.keys()) == ["item-0", "item-1", "item-2"]
    assert sorted(node.store.load_files()) == ["item-0.md", "item-1.md", "item-2.md"]


# -- the batched writer ---------------------------------------------------------------


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named temp"])
def test_write_new_files_never_replaces_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anonymous: bool
) -> None:
    if anonymous and not files._ANONYMOUS:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(files, "_ANONYMOUS", anonymous)
    (tmp_path / "taken.md").write_text("the user's\n")
    (tmp_path / "sub").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    outcomes = files.write_new_files(
        tmp_path,
        [("taken.md", "ours\n"), ("sub/new.md", "new\n"), ("link/x.md", "escape\n")],
    )
    assert outcomes == [WriteOutcome.CHANGED, WriteOutcome.WRITTEN, WriteOutcome.UNSAFE]
    assert (tmp_path / "taken.md").read_text() == "the user's\n"
    assert (tmp_path / "sub" / "new.md").read_text() == "new\n"
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path / "sub")) == ["new.md"]  # no temp file left
    assert stat.S_IMODE((tmp_path / "sub" / "new.md").stat().st_mode) == files.DEFAULT_MODE


# -- the digest index saved between runs ------------------------------------------------


def test_a_digest_index_survives_its_bytes() -> None:
    index = dg.DigestIndex()
    for n in range(300):
        index.set(f"key-{n}-é", n.to_bytes(dg.HASH_BYTES, "big"))
    again = dg.DigestIndex.from_bytes(index.to_bytes())
    assert again.root() == index.root()
    assert again.buckets() == index.buckets()
    assert again.get("key-7-é") == index.get("key-7-é")
    with pytest.raises(ValueError, match="truncated digest index"):
        dg.DigestIndex.from_bytes(index.to_bytes()[:-3])  # a truncated blob


def test_the_store_fingerprint_moves_with_every_change(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite3", compact_every=2) as store:
        seen = [store.fingerprint()]
        steps: list[Callable[[], None]] = [
            lambda: store.append("a", b"\x00\x00"),
            lambda: store.append("b", b"\x00\x00"),
            lambda: store.compact("a"),  # one row: nothing to merge, nothing changes
            lambda: store.append("a", b"\x00\x00"),
            lambda: store.compact("a"),
            lambda: store.remove("b"),
        ]
        for step in steps:
            step()
            seen.append(store.fingerprint())
        assert seen[3] == seen[2]
        del seen[3]
        assert len(set(seen)) == len(seen)


def run_once(root: Path) -> tuple[bytes, dict[str, bytes]]:
    """Start and stop a node with networking on; its digest root and index."""

    async def scenario() -> tuple[bytes, dict[str, bytes]]:
        async with running(root, net=NetOptions(True, "127.0.0.1", 0)) as node:
            index = node.items.digests
            return index.root(), {k: index.get(k) or b"" for k in node.repo.item_keys()}

    return asyncio.run(scenario())


def test_a_restart_restores_the_saved_digests_only_while_the_store_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "w"
    init(root)
    for n in range(5):
        (root / f"item-{n}.md").write_text(item_text(n))
    first = run_once(root)
    rebuilt: list[int] = []
    refresh_all = sp.RepoItems.refresh_all

    def counted(self: sp.RepoItems) -> None:
        rebuilt.append(1)
        refresh_all(self)

    monkeypatch.setattr(sp.RepoItems, "refresh_all", counted)
    assert run_once(root) == first
    assert rebuilt == []  # restored, not rebuilt
    (root / "item-2.md").write_text(item_text(2).replace("open", "done"))
    second = run_once(root)  # the edit made while stopped changes the store
    assert rebuilt == [1]
    assert second[0] != first[0]
    assert run_once(root) == second


def test_a_first_sync_renders_each_batch_before_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real link, the receiving side reads ahead: the renders of most
    batches were asked for before the batch came to be applied (so the workers
    render it while the node writes the one before), and are taken from there."""
    from benchmarks import corpus  # noqa: PLC0415 - the generated workspace of the benchmarks
    from tests.test_peering import linked, same_files, workspaces  # noqa: PLC0415

    if renderpool.shared() is None:
        pytest.skip("one core: the daemon renders every batch itself")
    items = 1500
    roots = workspaces(tmp_path, 2, seed_first=False)
    corpus.write_corpus(roots[0], items, 3)
    taken_ahead: list[int] = []
    take = renderpool.Ahead.take

    def spy(ahead: renderpool.Ahead, updates: list[bytes]) -> dict[bytes, object]:
        found = take(ahead, updates)
        taken_ahead.append(len(found))
        return cast("dict[bytes, object]", found)

    monkeypatch.setattr(renderpool.Ahead, "take", spy)

    async def scenario() -> None:
        async with running(roots[0], net=NetOptions(True, LOOPBACK, 0)) as a:
            assert a.address is not None
            net_b = NetOptions(True, LOOPBACK, 0, (f"{LOOPBACK}:{a.address.rsplit(':', 1)[1]}",))
            async with running(roots[1], net=net_b) as b:
                await wait_until(linked(a, b), timeout=30, what="B linked to A")
                await wait_until(same_files(*roots), timeout=120, what="the first sync")

    asyncio.run(scenario())
    assert sum(taken_ahead) >= items // 2, taken_ahead


def test_a_joined_peer_starts_its_render_workers_before_the_first_batch(tmp_path: Path) -> None:
    """An empty workspace going online expects a first sync: the workers start
    beside the handshake, not with the first batch (which they would miss)."""
    pool = renderpool.shared()
    if pool is None:
        pytest.skip("one core: the daemon renders every batch itself")
    pool.close()
    before = pool.rendered  # the pool is the process's: earlier tests used it
    root = init(tmp_path / "joined").workspace.root

    async def scenario() -> None:
        async with running(root, net=NetOptions(True, LOOPBACK, 0)):
            await wait_until(lambda: len(pool.pids()) == pool.size, timeout=30, what="workers")

    asyncio.run(scenario())
    assert pool.rendered == before  # started, not used: nothing was received
