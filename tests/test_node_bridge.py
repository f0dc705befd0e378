"""The file bridge on real files: a running node (real watcher, timers, store) in tmp_path.

Each test starts a node with ``node.running`` and drives it with real saves
and with peer updates made by a second replica (``nodehelpers.Remote``) and
handed to ``LocalNode.receive``. Nothing sleeps to wait: tests wait on bus
events or on conditions with bounded deadlines, and show that nothing more
happens with a bounded quiet window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.nodehelpers import (
    SAVES,
    EventTap,
    Remote,
    Spy,
    copy_corpus,
    in_sync,
    is_event,
    render,
    save_in_place,
    save_recreate,
    save_via_rename,
    tree,
    wait_until,
)
from worksync_p2p.adapters.eventsock import EventBus
from worksync_p2p.core import codec
from worksync_p2p.core.itemdoc import genesis_update
from worksync_p2p.node import LocalNode, running
from worksync_p2p.workspace import init

TASK = "task-fsnotify-research.md"
TASK_ID = "task-fsnotify-research"
PLAN = "plan-multi-session.md"
PLAN_ID = "plan-multi-session"
PROPOSAL = "proposal-real-time-sync-demo.md"
PROPOSAL_ID = "proposal-real-time-sync-demo"
NOTE = "note-no-frontmatter.md"
NOTE_KEY = "path:note-no-frontmatter.md"


def set_status(status: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        new, count = re.subn(r"(?m)^status: .*$", f"status: {status}", text)
        assert count == 1
        return new

    return change


def warnings_about(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and fragment in r.getMessage()
    ]


@contextlib.asynccontextmanager
async def task_node(tmp_path: Path) -> AsyncIterator[tuple[LocalNode, Path, EventTap]]:
    """A node serving a workspace of one task file, once it has read the file."""
    root = tmp_path / "ws"
    path = copy_corpus(root, TASK)[TASK]
    bus = EventBus()
    tap = EventTap(bus)
    async with running(root, bus) as node:
        await tap.wait_for(is_event("created", TASK_ID))
        yield node, path, tap


# -- 1. editor save styles -----------------------------------------------------------


async def _in_place_seen_truncated(node: LocalNode, path: Path, text: str) -> None:
    """An in-place save slow enough that the watcher reports the truncated file."""
    relpath = path.relative_to(node.root).as_posix()
    with path.open("r+b") as handle:
        handle.truncate(0)
    await wait_until(lambda: relpath in node.bridge.suspect_empty, what="the truncate seen")
    with path.open("r+b") as handle:
        handle.write(text.encode())


async def _recreate_seen_missing(node: LocalNode, path: Path, text: str) -> None:
    """Delete and re-create, slow enough that the watcher reports the file missing."""
    relpath = path.relative_to(node.root).as_posix()
    path.unlink()
    await wait_until(lambda: relpath in node.bridge.pending_delete, what="the unlink seen")
    path.write_bytes(text.encode())


def _at_once(
    save: Callable[[Path, str], None],
) -> Callable[[LocalNode, Path, str], Awaitable[None]]:
    async def run(_node: LocalNode, path: Path, text: str) -> None:
        save(path, text)

    return run


STYLES: dict[str, Callable[[LocalNode, Path, str], Awaitable[None]]] = {
    "in-place": _at_once(save_in_place),
    "in-place-seen-truncated": _in_place_seen_truncated,
    "rename-swp": _at_once(lambda p, t: save_via_rename(p, t, f".{p.name}.swp")),
    "rename-tmp-tilde": _at_once(lambda p, t: save_via_rename(p, t, f"{p.name}.tmp~")),
    "delete-recreate": _at_once(save_recreate),
    "delete-recreate-seen-missing": _recreate_seen_missing,
}


@pytest.mark.parametrize("style", list(STYLES))
def test_each_editor_save_style_is_one_modification(tmp_path: Path, style: str) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            await tap.wait_for(is_event("created", TASK_ID), what="created at start-up")
            for n, status in enumerate(("done", "blocked", "review")):
                new = set_status(status)(path.read_text())
                await STYLES[style](node, path, new)
                event = await tap.wait_for(is_event("modified", TASK_ID), what=f"save {n}")
                assert event["fields"] == ["status"]
                assert event["origin"] == "file"
                await wait_until(in_sync(node, TASK_ID, path), what="file == document")
                assert await tap.quiet() == []
                assert render(node, TASK_ID) == new == path.read_text()
            kinds = [e["event"] for e in tap.seen]
            assert kinds == ["created", "modified", "modified", "modified"]
            assert not [p for p in root.iterdir() if p.name.endswith((".swp", "~"))]

    asyncio.run(scenario())


# -- 2. editor droppings ---------------------------------------------------------------


def test_editor_droppings_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        (root / "sub").mkdir()
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            await tap.wait_for(is_event("created", TASK_ID))
            spy = Spy(monkeypatch, node)
            text = path.read_text()
            for folder in (root, root / "sub"):
                for name in (".x.md.swp", "x.md~", "4913", "x.md.tmp", "#x.md#", ".x.md"):
                    (folder / name).write_text(text)
                (folder / "x.md~").write_text(text + "again\n")
                (folder / "4913").unlink()  # vim's write test: created, then removed
                os.symlink("user@host.1234:1700000000", folder / ".#x.md")  # emacs lock
            # A real save after the droppings: once it is reported, so are they.
            new = set_status("done")(text)
            save_via_rename(path, new)
            await tap.wait_for(is_event("modified", TASK_ID))
            assert await tap.quiet() == []
            assert [e["event"] for e in tap.seen] == ["created", "modified"]
            assert set(spy.feeds) == {TASK}
            assert len(node.bridge.disk) == 1
            assert TASK in node.bridge.disk
            assert len(node.repo) == 1
            assert TASK_ID in node.repo

    asyncio.run(scenario())


# -- 3. loop-freedom -----------------------------------------------------------------


def test_a_remote_update_is_written_once_and_its_echo_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with task_node(tmp_path) as (node, path, tap):
            spy = Spy(monkeypatch, node)
            remote = Remote()
            for n, status in enumerate(("remote-1", "remote-2", "remote-3")):
                echo = spy.fed_again(TASK)
                remote.send(node, TASK_ID, set_status(status))
                # written synchronously, before any watcher report
                assert f"status: {status}" in path.read_text()
                assert path.read_text() == render(node, TASK_ID)
                assert tap.drain() == [
                    {
                        "event": "modified",
                        "id": TASK_ID,
                        "path": TASK,
                        "fields": ["status"],
                        "origin": "peer-b",
                    }
                ]
                # the watcher reports our own write, and it stops there
                await wait_until(echo, what="the echo of our write")
                assert await tap.quiet() == []
                assert spy.appends == {TASK_ID: n + 1}  # the peer's update, nothing of ours
                assert spy.writes == {TASK: n + 1}
                assert spy.write_attempts == spy.writes
            assert node.store.load(TASK_ID) is not None

    asyncio.run(scenario())


def test_a_peer_claim_concurrent_with_a_save_emits_a_conflict_event(tmp_path: Path) -> None:
    """The peer's value loses (the save is later), so its file is not touched: the
    conflict event is what tells a watching UI that two claims met."""

    async def scenario() -> None:
        async with task_node(tmp_path) as (node, path, tap):
            theirs = Remote().edit(node, TASK_ID, set_status("claimed-by-bob"))
            save_via_rename(path, set_status("claimed-by-alice")(path.read_text()))
            await tap.wait_for(is_event("modified", TASK_ID))
            saved = path.read_bytes()
            node.receive(TASK_ID, theirs, "peer-b")
            assert tap.drain() == [
                {
                    "event": "conflict",
                    "id": TASK_ID,
                    "path": TASK,
                    "fields": ["status"],
                    "origin": "peer-b",
                }
            ]
            assert path.read_bytes() == saved
            assert await tap.quiet() == []

    asyncio.run(scenario())


# -- 4. a remote write never clobbers a newer save -----------------------------------------


@pytest.mark.parametrize("save", SAVES, ids=lambda s: s.__name__)
def test_a_remote_update_racing_a_save_keeps_both(
    tmp_path: Path, save: Callable[[Path, str], None]
) -> None:
    async def scenario() -> None:
        async with task_node(tmp_path) as (node, path, tap):
            remote = Remote()
            user = path.read_text().replace("All three must", "All three (user) must")
            save(path, user)
            # same loop turn: the watcher cannot have reported the save yet
            remote.send(node, TASK_ID, set_status("remote"))
            assert "(user)" in path.read_text(), "the user's save was overwritten"
            await wait_until(in_sync(node, TASK_ID, path), what="file == document")
            await tap.quiet()
            text = path.read_text()
            assert text == render(node, TASK_ID)
            assert "All three (user) must" in text
            assert "status: remote" in text

    asyncio.run(scenario())


def test_a_remote_update_never_overwrites_an_unseen_save(tmp_path: Path) -> None:
    """The part of rule 2 that holds today: the save itself is never lost."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        async with running(root) as node:
            remote = Remote()
            for n, save in enumerate(SAVES):
                user = re.sub(r"(?m)^## Findings.*$", f"## Findings {n}", path.read_text())
                save(path, user)
                remote.send(node, TASK_ID, set_status(f"remote-{n}"))
                assert f"## Findings {n}\n" in path.read_text()
                await wait_until(in_sync(node, TASK_ID, path), what="file == document")
                assert f"## Findings {n}\n" in path.read_text()

    asyncio.run(scenario())


# -- 5. hammer ---------------------------------------------------------------------------

HAMMER_TEXT = """\
---
id: hammer
status: open
remote_count: 0
---
writer: 0

remote log:
"""


HAMMER_SAVES = 100
HAMMER_SENT = 50
HAMMER_OVERTIME_S = 10.0


async def _hammer(root: Path, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    root.mkdir()
    path = root / "hammer.md"
    path.write_text(HAMMER_TEXT)
    bus = EventBus()
    tap = EventTap(bus)
    rng = random.Random(7)
    async with running(root, bus) as node:
        await tap.wait_for(is_event("created", "hammer"))
        spy = Spy(monkeypatch, node)
        remote = Remote()
        # At least ``seconds`` long, and on a loaded machine longer, until each side
        # has done the work the checks below count on (bounded all the same).
        end = time.monotonic() + seconds
        hard_end = end + HAMMER_OVERTIME_S
        saves: list[int] = []
        sent: list[int] = []

        def done(count: int, wanted: int) -> bool:
            now = time.monotonic()
            return now > hard_end or (now > end and count > wanted)

        async def writer() -> None:
            for k in range(1, 2000):
                if done(len(saves), HAMMER_SAVES):
                    return
                text, count = re.subn(r"(?m)^writer: \d+$", f"writer: {k}", path.read_text())
                assert count == 1, text
                SAVES[k % len(SAVES)](path, text)
                saves.append(k)
                await asyncio.sleep(rng.uniform(0.002, 0.005))  # pacing the user, not a wait

        def remote_change(i: int) -> Callable[[str], str]:
            def change(text: str) -> str:
                text = re.sub(r"(?m)^remote_count: \d+$", f"remote_count: {i}", text)
                return text + f"- r{i}\n"

            return change

        async def peer() -> None:
            for i in range(1, 1000):
                if done(len(sent), HAMMER_SENT):
                    return
                remote.send(node, "hammer", remote_change(i))
                sent.append(i)
                await asyncio.sleep(0.010)  # pacing the peer, not a wait

        await asyncio.gather(writer(), peer())
        await wait_until(in_sync(node, "hammer", path), what="the watcher settles")
        tap.drain()
        await tap.quiet()
        await wait_until(in_sync(node, "hammer", path), what="still in sync")
        text = path.read_text()
        assert text == render(node, "hammer")
        assert len(saves) > HAMMER_SAVES
        assert len(sent) > HAMMER_SENT
        assert f"\nwriter: {saves[-1]}\n" in text, "the last save was lost"
        missing = [i for i in sent if f"\n- r{i}\n" not in text]
        assert missing == [], f"{len(missing)} of {len(sent)} peer changes lost"
        assert f"\nremote_count: {sent[-1]}\n" in text
        assert not [e for e in tap.seen if e["event"] == "deleted"]
        assert spy.writes[path.name] <= len(sent) + 2
        assert spy.write_attempts[path.name] <= 4 * len(sent) + 2
        assert spy.appends["hammer"] <= len(saves) + 2 * len(sent) + 4


def test_hammer_saves_and_peer_updates_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_hammer(tmp_path / "ws", monkeypatch, seconds=1.5))


def test_hammer_saves_alone_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer half of the hammer with no peer: every style, 2-5 ms apart."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        root.mkdir()
        path = root / "hammer.md"
        path.write_text(HAMMER_TEXT)
        bus = EventBus()
        tap = EventTap(bus)
        rng = random.Random(11)
        async with running(root, bus) as node:
            await tap.wait_for(is_event("created", "hammer"))
            spy = Spy(monkeypatch, node)
            last = 0
            end = time.monotonic() + 1.0
            for k in range(1, 2000):
                if time.monotonic() > end:
                    break
                text = re.sub(r"(?m)^writer: \d+$", f"writer: {k}", path.read_text())
                SAVES[k % len(SAVES)](path, text)
                last = k
                await asyncio.sleep(rng.uniform(0.002, 0.005))  # pacing, not a wait
            await wait_until(in_sync(node, "hammer", path), what="the watcher settles")
            tap.drain()  # the saves' own events
            assert await tap.quiet() == []
            assert f"\nwriter: {last}\n" in path.read_text()
            assert path.read_text() == render(node, "hammer")
            assert not [e for e in tap.seen if e["event"] == "deleted"]
            assert spy.writes == {}
            assert spy.appends["hammer"] <= last

    asyncio.run(scenario())


# -- 6. burst ---------------------------------------------------------------------------


def test_a_burst_of_saves_ends_as_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with task_node(tmp_path) as (node, path, tap):
            spy = Spy(monkeypatch, node)
            base = path.read_text()
            started = time.monotonic()
            last = base
            for k in range(100):
                last = set_status(f"step-{k}")(base)
                SAVES[k % len(SAVES)](path, last)
                await asyncio.sleep(0.008)  # pacing: 100 saves in about a second
            assert time.monotonic() - started < 3
            await wait_until(in_sync(node, TASK_ID, path), what="the watcher settles")
            tap.drain()  # the burst's own events
            assert await tap.quiet() == []
            assert render(node, TASK_ID) == last == path.read_text()
            kinds = {e["event"] for e in tap.seen[1:]}
            assert kinds == {"modified"}
            assert 1 <= spy.appends[TASK_ID] <= 103
            assert len(tap.seen) - 1 == spy.appends[TASK_ID]
            assert spy.writes == {}

    asyncio.run(scenario())


# -- 7. start-up reconciliation ------------------------------------------------------------

BROKEN = b"---\nid: proposal-real-time-sync-demo\ntype: [unclosed\n---\nbody\n"


async def _first_run(root: Path) -> dict[str, str]:
    """Run a node over the corpus once; the renders it left."""
    bus = EventBus()
    tap = EventTap(bus)
    async with running(root, bus) as node:
        keys = {TASK_ID, PLAN_ID, PROPOSAL_ID, NOTE_KEY}
        for _ in range(len(keys)):
            await tap.wait_for(lambda e: e["event"] == "created")
        assert {e["id"] for e in tap.seen} == keys
        out = {}
        for key in keys:
            text = render(node, key)
            assert text is not None
            out[key] = text
        return out


def _edit_while_stopped(root: Path) -> str:
    edited = set_status("done-while-stopped")((root / TASK).read_text())
    (root / TASK).write_text(edited)
    (root / "archive").mkdir()
    os.replace(root / PLAN, root / "archive" / PLAN)
    (root / NOTE).unlink()
    (root / "new-item.md").write_text("---\nid: new-item\nstatus: open\n---\nnew\n")
    (root / PROPOSAL).write_bytes(BROKEN)
    return edited


def test_start_up_reconciles_what_changed_while_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        copy_corpus(root, TASK, PLAN, PROPOSAL, NOTE)
        before = await _first_run(root)
        edited = _edit_while_stopped(root)
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            events = {(e["event"], e["id"]) for e in tap.drain()}
            # the edit became a diff of the existing document: one genesis, no re-seed
            task = node.repo.get(TASK_ID)
            assert task is not None
            assert len(task.geneses()) == 1
            assert task.render() == edited
            assert ("modified", TASK_ID) in events
            # the moved item kept its key and follows its new path
            plan = node.repo.get(PLAN_ID)
            assert plan is not None
            assert plan.alive()
            assert plan.path() == f"archive/{PLAN}"
            assert node.bridge.path_of(PLAN_ID) == f"archive/{PLAN}"
            assert plan.render() == before[PLAN_ID] == (root / "archive" / PLAN).read_text()
            assert not (root / PLAN).exists()
            # the deleted one is gone once the delete grace ran out (a file missing at
            # start-up may be half-way through a delete-and-recreate save)
            if ("deleted", NOTE_KEY) not in events:
                await tap.wait_for(
                    lambda e: (e["event"], e["id"]) == ("deleted", NOTE_KEY), what="note deleted"
                )
            note = node.repo.get(NOTE_KEY)
            assert note is not None
            assert not note.alive()
            assert not (root / NOTE).exists()
            # the new one exists
            assert render(node, "new-item") == (root / "new-item.md").read_text()
            assert ("created", "new-item") in events
            # the broken one is reported, left alone, its last good state kept
            assert warnings_about(caplog, PROPOSAL)
            assert (root / PROPOSAL).read_bytes() == BROKEN
            assert render(node, PROPOSAL_ID) == before[PROPOSAL_ID]
            assert PROPOSAL in node.bridge.bad
            assert node.started().bad_files == 1
            assert await tap.quiet() == []
            assert len(warnings_about(caplog, PROPOSAL)) == 1

    asyncio.run(scenario())


def test_a_move_while_stopped_is_a_rename_not_a_delete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        copy_corpus(root, TASK, PLAN, PROPOSAL, NOTE)
        await _first_run(root)
        _edit_while_stopped(root)
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus):
            events = [e["event"] for e in tap.drain() if e["id"] == PLAN_ID]
            assert events == ["renamed"]
            assert not warnings_about(caplog, "already used")

    asyncio.run(scenario())


def _renamed_by_a_peer(text: str) -> str:
    return text.replace("All three must", "All three (peer) must")


async def _peer_renames_task(node: LocalNode, root: Path, tap: EventTap) -> Path:
    """A peer's rename of TASK lands: the node writes the new file, removes the old."""
    await tap.wait_for(is_event("created", TASK_ID))
    Remote().send(node, TASK_ID, _renamed_by_a_peer, path="moved.md")
    moved = root / "moved.md"
    await wait_until(lambda: not (root / TASK).exists() and moved.exists(), what="the move")
    return moved


@pytest.mark.parametrize("restart", [False, True], ids=["live", "after-restart"])
def test_a_stale_editor_saving_a_file_a_peer_renamed_edits_the_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, restart: bool
) -> None:
    """Process chaos seed 2: the editor still open on the old path saved it back; the
    file was taken for a second copy of the id, reported and never synced."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        original = copy_corpus(root, TASK)[TASK].read_text()
        stale = original.replace("## Findings", "## Findings (user)")
        tap = EventTap(bus := EventBus())
        async with running(root, bus) as node:
            moved = await _peer_renames_task(node, root, tap)
            if not restart:
                save_recreate_missing(root / TASK, stale)
                await wait_until(lambda: not (root / TASK).exists(), what="the stale file gone")
                await wait_until(in_sync(node, TASK_ID, moved), what="file == document")
        if restart:
            save_recreate_missing(root / TASK, stale)
            async with running(root) as node:
                await wait_until(in_sync(node, TASK_ID, moved), what="file == document")
                assert not (root / TASK).exists()
        text = moved.read_text()
        assert "## Findings (user)" in text
        assert "All three (peer) must" in text
        assert not warnings_about(caplog, "already used")

    asyncio.run(scenario())


def save_recreate_missing(path: Path, text: str) -> None:
    """An editor writing its buffer back to a path that no longer exists."""
    assert not path.exists()
    path.write_bytes(text.encode())


LEFT_TEMP = f".{TASK}.0123abcd.worksync-tmp"
USER_SAVE = "user's save"


def _leftover_case(root: Path, case: str, synced: str) -> None:
    """What a daemon killed mid-write leaves: the temp file, and the file beside it."""
    saved = synced.replace("## Findings", "## Findings (user's save)")
    temp, target = root / LEFT_TEMP, root / TASK
    if case == "swap-before-check":  # the user's save swapped out; our render in place
        temp.write_text(saved)
    elif case == "removal-before-check":  # the user's save renamed aside; nothing in place
        temp.write_text(saved)
        target.unlink()
    elif case == "render-never-moved-in":
        temp.write_text(synced)
    elif case == "saved-again-since":  # the user saved once more after the kill
        temp.write_text(saved)
        target.write_text(synced.replace("## Findings", "## Findings (newer)"))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("swap-before-check", USER_SAVE),
        ("removal-before-check", USER_SAVE),
        ("render-never-moved-in", "## Findings\n"),
        ("saved-again-since", "(newer)"),
    ],
)
def test_a_temp_file_a_kill_left_gives_back_the_users_save(
    tmp_path: Path, case: str, expected: str
) -> None:
    """A kill -9 between write_if's swap and its check left the user's save in a temp
    file, which the next start deleted: that save was lost."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        copy_corpus(root, TASK)
        synced = (await _first_run_of(root))[TASK_ID]
        _leftover_case(root, case, synced)
        async with running(root) as node:
            path = root / TASK
            await wait_until(in_sync(node, TASK_ID, path), what="file == document")
            assert expected in path.read_text()
            assert not (root / LEFT_TEMP).exists()

    asyncio.run(scenario())


async def _first_run_of(root: Path) -> dict[str, str]:
    tap = EventTap(bus := EventBus())
    async with running(root, bus) as node:
        await tap.wait_for(is_event("created", TASK_ID))
        text = render(node, TASK_ID)
        assert text is not None
        return {TASK_ID: text}


# -- 8. path safety ---------------------------------------------------------------------

UNSAFE_PATHS = [
    "../escape.md",
    "/abs.md",
    ".hidden/x.md",
    "x.txt",
    "con.md",
    "a/../../up.md",
    "n" * 253 + ".md",  # one byte over NAME_MAX
    "tab\there.md",
]
ITEM = "---\nid: {key}\nstatus: open\n---\nfrom a peer\n"


def _outside_snapshot(tmp_path: Path) -> tuple[set[str], set[str], bool]:
    return (
        tree(tmp_path, skip="ws/.worksync"),
        {p.name for p in tmp_path.parent.iterdir()},
        Path("/abs.md").exists(),
    )


def test_unsafe_paths_from_a_peer_are_never_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        original = path.read_bytes()
        async with running(root) as node:
            before = _outside_snapshot(tmp_path)
            remote = Remote()
            for n, unsafe in enumerate(UNSAFE_PATHS):
                # a new item whose path is unsafe
                key = f"evil-{n}"
                parsed = codec.parse(ITEM.format(key=key).encode(), "x.md")
                node.receive(key, genesis_update(key, parsed, unsafe), "peer-b")
                assert warnings_about(caplog, "unsafe path"), unsafe
                # an existing item moved there by a peer
                remote.send(node, TASK_ID, lambda t: t, path=unsafe)
                assert path.read_bytes() == original, "the item's file must stay"
            assert _outside_snapshot(tmp_path) == before
            # one report per unsafe path (the move to an already reported path is not repeated)
            assert len(warnings_about(caplog, "unsafe path")) == len(UNSAFE_PATHS)
            assert node.bridge.path_of(TASK_ID) == TASK

    asyncio.run(scenario())


def test_a_peer_item_is_not_written_through_a_symlink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        copy_corpus(root, TASK)
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "target.md").write_text("not yours\n")
        os.symlink(outside, root / "linked")
        os.symlink(outside / "target.md", root / "trap.md")
        async with running(root) as node:
            for n, relpath in enumerate(["linked/x.md", "trap.md", "linked/target.md"]):
                key = f"evil-{n}"
                parsed = codec.parse(ITEM.format(key=key).encode(), "x.md")
                node.receive(key, genesis_update(key, parsed, relpath), "peer-b")
            assert sorted(p.name for p in outside.iterdir()) == ["target.md"]
            assert (outside / "target.md").read_text() == "not yours\n"
            assert len(warnings_about(caplog, "not written")) == 3

    asyncio.run(scenario())


def test_a_peer_path_through_a_symlink_creates_no_folder_outside(tmp_path: Path) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        root.mkdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        os.symlink(outside, root / "linked")
        async with running(root) as node:
            parsed = codec.parse(ITEM.format(key="evil").encode(), "x.md")
            node.receive("evil", genesis_update("evil", parsed, "linked/new/x.md"), "peer-b")
            assert list(outside.iterdir()) == []

    asyncio.run(scenario())


def test_a_symlink_made_in_the_workspace_is_not_followed_out_of_it(tmp_path: Path) -> None:
    """A symlinked file or folder pointing outside is neither read nor synced nor written."""

    async def scenario() -> None:
        root = tmp_path / "ws"
        path = copy_corpus(root, TASK)[TASK]
        outside = tmp_path / "outside"
        outside.mkdir()
        secret = outside / "secret.md"
        secret.write_text("---\nid: secret\nstatus: private\n---\nnot for peers\n")
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            await tap.wait_for(is_event("created", TASK_ID))
            os.symlink(secret, root / "link.md")
            os.symlink(outside, root / "linked")
            (outside / "inner.md").write_text("---\nid: inner\n---\nalso private\n")
            # A real save after the links: once it is reported, the links were seen too.
            save_via_rename(path, set_status("done")(path.read_text()))
            await tap.wait_for(is_event("modified", TASK_ID))
            assert await tap.quiet() == []
            assert [e["event"] for e in tap.seen] == ["created", "modified"]
            assert len(node.repo) == 1
            assert TASK_ID in node.repo
            assert len(node.bridge.disk) == 1
            assert TASK in node.bridge.disk
        assert sorted(p.name for p in outside.iterdir()) == ["inner.md", "secret.md"]
        assert "not for peers" in secret.read_text()

    asyncio.run(scenario())


# -- 11. bad files ------------------------------------------------------------------------

MAX_BYTES = 1024
GOOD = "---\nid: item\nstatus: open\n---\nfirst line\n"
FIXED = "---\nid: item\nstatus: open\n---\nfirst line, fixed\n"
BAD_FILES = {
    "invalid-yaml": (b"---\nid: item\nstatus: [unclosed\n---\nfirst line\n", "invalid YAML"),
    "not-a-mapping": (b"---\n- id\n- item\n---\nfirst line\n", "not a mapping"),
    "nul-byte": (GOOD.encode() + b"\x00\n", "NUL"),
    "not-utf8": (GOOD.encode() + b"caf\xe9\n", "not UTF-8"),
    "too-big": (GOOD.encode() + b"x" * MAX_BYTES + b"\n", "over the limit"),
    "duplicate-key": (b"---\nid: item\nstatus: open\nstatus: done\n---\nx\n", "duplicate key"),
    "non-string-key": (b"---\nid: item\n1: one\n---\nfirst line\n", "non-string key"),
    "python-tag": (b"---\nid: item\nstatus: !!python/name:os.system x\n---\n", "unsupported"),
}


async def _bad_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    bad, reason = BAD_FILES[case]
    root = tmp_path / "ws"
    workspace = init(root).workspace
    workspace.config_path.write_text(f"max_item_bytes = {MAX_BYTES}\n")
    path = root / "item.md"
    path.write_text(GOOD)
    bus = EventBus()
    tap = EventTap(bus)
    async with running(root, bus) as node:
        assert node.config.max_item_bytes == MAX_BYTES
        await tap.wait_for(is_event("created", "item"))
        spy = Spy(monkeypatch, node)
        remote = Remote()

        def reports() -> list[str]:
            return warnings_about(caplog, "item.md:")

        tmp = root / ".item.md.swp"
        tmp.write_bytes(bad)
        os.replace(tmp, path)
        await wait_until(lambda: len(reports()) == 1, what="the report")
        assert reason in reports()[0]
        assert render(node, "item") == GOOD
        # the same bad content saved again: not reported again
        fed_again = spy.fed_again("item.md")
        tmp.write_bytes(bad)
        os.replace(tmp, path)
        await wait_until(fed_again, what="the re-save seen")
        assert await tap.quiet() == []
        assert len(reports()) == 1
        # a peer's change is kept in the document, not written over the bad file
        remote.send(node, "item", set_status("remote"))
        assert await tap.quiet() == []
        assert path.read_bytes() == bad
        assert spy.writes == {}
        assert "status: remote" in (render(node, "item") or "")
        # fixing the file resumes sync
        save_via_rename(path, FIXED)
        await tap.wait_for(is_event("modified", "item"), what="the fix ingested")
        await wait_until(in_sync(node, "item", path))
        assert "first line, fixed" in path.read_text()
        assert "item.md" not in node.bridge.bad
        remote.send(node, "item", lambda t: t + "peer line\n")
        assert path.read_text() == render(node, "item")
        assert path.read_text().endswith("peer line\n")
        await wait_until(in_sync(node, "item", path))
        assert len(reports()) == 1


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_reported_once_left_alone_and_sync_resumes_when_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    asyncio.run(_bad_file(tmp_path, monkeypatch, caplog, case))


def test_a_peer_change_made_while_the_file_was_bad_survives_the_fix(tmp_path: Path) -> None:
    async def scenario() -> None:
        root = tmp_path / "ws"
        root.mkdir()
        path = root / "item.md"
        path.write_text(GOOD)
        bus = EventBus()
        tap = EventTap(bus)
        async with running(root, bus) as node:
            await tap.wait_for(is_event("created", "item"))
            save_via_rename(path, BAD_FILES["invalid-yaml"][0].decode())
            await wait_until(lambda: "item.md" in node.bridge.bad, what="the report")
            Remote().send(node, "item", set_status("remote"))
            save_via_rename(path, FIXED)
            await tap.wait_for(is_event("modified", "item", origin="file"))
            await wait_until(in_sync(node, "item", path))
            text = path.read_text()
            assert "first line, fixed" in text
            assert "status: remote" in text

    asyncio.run(scenario())
