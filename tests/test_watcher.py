"""The file watcher: watchfiles' changes, collected when the inotify doorbell rings.

Real folders, real inotify, real watchfiles. Waits are bounded; a "quiet"
wait (nothing rings) is the only way to show that nothing happens.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.nodehelpers import EventTap, copy_corpus, is_event, wait_until
from worksync_p2p.adapters import doorbell
from worksync_p2p.adapters import watcher as watcher_module
from worksync_p2p.adapters.eventsock import EventBus
from worksync_p2p.adapters.watcher import Watcher
from worksync_p2p.node import running
from worksync_p2p.workspace import init

WAIT_S = 10.0
QUIET_S = 0.2
MAX_BATCHES = 10  # a write reported over more batches than this is a bug
TASK = "task-fsnotify-research.md"
TASK_ID = "task-fsnotify-research"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def _md_only(path: str) -> bool:
    return path.endswith(".md")


def _bell(root: Path) -> doorbell.Doorbell:
    bell = doorbell.open_doorbell(root)
    assert bell is not None, "no inotify doorbell on Linux"
    return bell


# -- the doorbell -------------------------------------------------------------------


@linux_only
def test_doorbell_rings_for_a_save_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    bell = _bell(tmp_path)
    try:
        assert not bell.wait(QUIET_S)
        (tmp_path / "a.md").write_text("x")
        assert bell.wait(WAIT_S)
        assert not bell.wait(QUIET_S), "the events of one save ring once, not forever"
    finally:
        bell.close()


@linux_only
def test_doorbell_rings_when_an_in_place_save_is_closed_not_at_its_truncate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.md"
    path.write_text("old")
    bell = _bell(tmp_path)
    try:
        with path.open("w") as handle:  # truncates
            handle.write("half")
            handle.flush()
            assert not bell.wait(QUIET_S), "rang before the save was complete"
            handle.write(" and the rest")
        assert bell.wait(WAIT_S)
    finally:
        bell.close()


@linux_only
def test_doorbell_watches_a_folder_made_after_it_started(tmp_path: Path) -> None:
    bell = _bell(tmp_path)
    try:
        (tmp_path / "new" / "deeper").mkdir(parents=True)
        assert bell.wait(WAIT_S)
        while bell.wait(QUIET_S):
            pass  # the folder's own events
        (tmp_path / "new" / "deeper" / "b.md").write_text("x")
        assert bell.wait(WAIT_S), "a save in a new folder must ring"
    finally:
        bell.close()


@linux_only
def test_doorbell_ignores_the_state_folder_and_hidden_folders(tmp_path: Path) -> None:
    for name in (".worksync", ".git"):
        (tmp_path / name).mkdir()
    bell = _bell(tmp_path)
    try:
        (tmp_path / ".worksync" / "store.sqlite3-wal").write_bytes(b"x")
        (tmp_path / ".git" / "index").write_bytes(b"x")
        assert not bell.wait(QUIET_S)
        bell.ring()
        assert bell.wait(WAIT_S), "ring() wakes a wait"
    finally:
        bell.close()


def test_folder_changed_reads_inotify_records() -> None:
    def record(mask: int, name: bytes = b"") -> bytes:
        padded = name.ljust(16, b"\0") if name else b""
        return doorbell.EVENT_HEADER.pack(1, mask, 0, len(padded)) + padded

    file_saved = record(doorbell.IN_MODIFY, b"a.md") + record(doorbell.IN_CREATE, b"b.md")
    assert not doorbell.folder_changed(file_saved)
    folder_made = record(doorbell.IN_CREATE | doorbell.IN_ISDIR, b"sub")
    assert doorbell.folder_changed(file_saved + folder_made)
    assert doorbell.folder_changed(record(doorbell.IN_Q_OVERFLOW))


def test_the_doorbell_names_complete_saves_apart_from_other_changes() -> None:
    def record(wd: int, mask: int, name: bytes = b"") -> bytes:
        padded = name.ljust(16, b"\0") if name else b""
        return doorbell.EVENT_HEADER.pack(wd, mask, 0, len(padded)) + padded

    heard = doorbell.Heard()
    heard.add(
        record(1, doorbell.IN_MOVED_TO, b"a.md")
        + record(2, doorbell.IN_CLOSE_WRITE, b"b.md")
        + record(1, doorbell.IN_CREATE, b"c.md")  # may still be empty
        + record(1, doorbell.IN_MOVED_FROM, b".a.md.swp"),
        {1: "/w", 2: "/w/x"},
    )
    assert heard.saved == {"/w/a.md", "/w/x/b.md"}
    assert heard.changed == {"/w/c.md", "/w/.a.md.swp"}
    assert not heard.unknown
    for unnamed in (
        record(1, doorbell.IN_MOVED_TO | doorbell.IN_ISDIR, b"sub"),
        record(3, doorbell.IN_CLOSE_WRITE, b"d.md"),  # a watch given up since
        record(-1, doorbell.IN_Q_OVERFLOW),
    ):
        other = doorbell.Heard()
        other.add(unnamed, {1: "/w"})
        assert other.unknown
        assert other.saved == set()


# -- the watcher --------------------------------------------------------------------


@linux_only
def test_a_complete_save_comes_before_watchfiles_next_step(tmp_path: Path) -> None:
    """With watchfiles stepping every 2 s, only the doorbell's own look is this quick."""

    async def scenario() -> None:
        path = tmp_path / "a.md"
        with Watcher(tmp_path, _md_only, step_ms=2000, debounce_ms=4000) as watcher:
            temp = tmp_path / ".a.md.swp"
            temp.write_text("saved")
            temp.replace(path)  # an atomic save
            assert str(path) in (await asyncio.wait_for(watcher.next(), 1.0) or ())
            with path.open("w") as handle:  # an in-place save: not before its close
                handle.write("half")
                handle.flush()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(watcher.next(), QUIET_S)
                handle.write(" and the rest")
            assert str(path) in (await asyncio.wait_for(watcher.next(), 1.0) or ())

    asyncio.run(scenario())


@linux_only
def test_a_ring_of_complete_saves_does_not_wake_watchfiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its record of the save waits for a later collect, away from the edit's path."""
    monkeypatch.setattr(watcher_module, "SAFETY_NET_S", 30.0)

    async def scenario() -> None:
        path = tmp_path / "a.md"
        path.write_text("first")
        with Watcher(tmp_path, _md_only, step_ms=1, debounce_ms=20) as watcher:
            temp = tmp_path / ".a.md.swp"
            temp.write_text("saved")
            temp.replace(path)
            assert await asyncio.wait_for(watcher.next(), WAIT_S) == {str(path)}
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(watcher.next(), QUIET_S)
            path.unlink()  # not a save: watchfiles collects, its record of the save too
            assert await asyncio.wait_for(watcher.next(), WAIT_S) == {str(path)}

    asyncio.run(scenario())


@pytest.mark.parametrize("use_doorbell", [True, False], ids=["doorbell", "polling"])
def test_watcher_reports_saves_in_either_mode(tmp_path: Path, use_doorbell: bool) -> None:
    async def scenario() -> None:
        (tmp_path / "sub").mkdir()
        with Watcher(
            tmp_path, _md_only, step_ms=1, debounce_ms=20, doorbell=use_doorbell
        ) as watcher:
            on_linux = sys.platform.startswith("linux")
            assert watcher.mode == ("doorbell" if use_doorbell and on_linux else "polling")
            written: set[str] = set()
            for relpath in ("a.md", "sub/b.md", "d.md"):
                if relpath == "d.md":
                    (tmp_path / "c.txt").write_text("x")  # filtered out
                (tmp_path / relpath).write_text("x")
                written.add(str(tmp_path / relpath))
                await _until_reported(watcher, str(tmp_path / relpath), written)

    asyncio.run(scenario())


async def _until_reported(watcher: Watcher, path: str, allowed: set[str]) -> None:
    """Batches until ``path`` is in one; none may name a file not written.

    A write is a create and a close: under load they can land in two batches,
    so a file may be reported once more with the next one (the bridge reads
    it again and finds nothing new).
    """
    for _ in range(MAX_BATCHES):
        seen = await asyncio.wait_for(watcher.next(), WAIT_S)
        assert seen is not None, "the watcher ended"
        assert seen <= allowed, seen - allowed
        if path in seen:
            return
    raise AssertionError(f"{path} not reported in {MAX_BATCHES} batches")


def test_watcher_merges_batches_the_loop_has_not_taken_yet(tmp_path: Path) -> None:
    async def scenario() -> None:
        with Watcher(tmp_path, _md_only, step_ms=1, debounce_ms=20) as watcher:
            a, b, c = (str(tmp_path / name) for name in ("a.md", "b.md", "c.md"))
            (tmp_path / "a.md").write_text("x")
            assert await asyncio.wait_for(watcher.next(), WAIT_S) == {a}
            # Two saves while the loop does not look: both paths come at once
            # (with a.md again, if watchfiles' batch of it came after the doorbell's).
            (tmp_path / "b.md").write_text("x")
            await wait_until(lambda: b in watcher.pending(), WAIT_S, "b.md collected")
            (tmp_path / "c.md").write_text("x")
            await wait_until(lambda: c in watcher.pending(), WAIT_S, "c.md collected")
            seen = await asyncio.wait_for(watcher.next(), WAIT_S)
            assert seen is not None
            assert {b, c} <= seen <= {a, b, c}

    asyncio.run(scenario())


def test_ring_collects_a_change_the_doorbell_does_not_watch(tmp_path: Path) -> None:
    async def scenario() -> None:
        state = tmp_path / ".worksync"
        state.mkdir()
        probe = state / "watch-probe"
        with Watcher(tmp_path, lambda p: p == str(probe), step_ms=1, debounce_ms=20) as watcher:
            probe.write_bytes(b"")
            watcher.ring()
            assert await asyncio.wait_for(watcher.next(), WAIT_S) == {str(probe)}

    asyncio.run(scenario())


def test_watcher_closes_promptly_and_only_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        watcher = Watcher(tmp_path, _md_only, step_ms=1, debounce_ms=20)
        waiting = asyncio.ensure_future(watcher.next())
        watcher.close()
        watcher.close()
        assert await asyncio.wait_for(waiting, WAIT_S) is None
        assert await asyncio.wait_for(watcher.next(), WAIT_S) is None

    asyncio.run(scenario())


def test_a_batch_left_when_closing_is_returned_then_the_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        watcher = Watcher(tmp_path, _md_only, step_ms=1, debounce_ms=20)
        (tmp_path / "a.md").write_text("x")
        await wait_until(lambda: bool(watcher.pending()), WAIT_S, "a.md collected")
        watcher.close()
        assert await asyncio.wait_for(watcher.next(), WAIT_S) == {str(tmp_path / "a.md")}
        assert await asyncio.wait_for(watcher.next(), WAIT_S) is None

    asyncio.run(scenario())


# -- the daemon ---------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["true", "false"])
def test_the_node_follows_saves_with_the_doorbell_on_or_off(tmp_path: Path, setting: str) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        config = init(root).workspace.config_path
        config.write_text(f"watch_doorbell = {setting}\nwatch_step_ms = 2\n")
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            assert node.config.watch_doorbell is (setting == "true")
            await tap.wait_for(is_event("created", TASK_ID), what="created at start-up")
            path.write_text(path.read_text().replace("status: in_progress", "status: done"))
            event = await tap.wait_for(is_event("modified", TASK_ID), what="the save")
            assert event["fields"] == ["status"]

    asyncio.run(scenario())
