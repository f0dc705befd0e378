"""A delete-and-recreate save that the watcher reports only after the delete grace ran
out (chaos seed 30): the node looks at the path before the grace decides a delete.
Real files, real SQLite, the node's own feed and timer; the clock is the node's, advanced
by hand, so "late" is exact and nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodehelpers import Remote, render
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import init

START = "---\nid: t1\nstatus: open\n---\nfirst line\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def node(tmp_path: Path, clock: Clock) -> Iterator[LocalNode]:
    workspace = init(tmp_path / "a").workspace
    with SqliteStore(workspace.store_path) as store:
        local = LocalNode(workspace, workspace.load_config(), store, clock=clock)
        local.load()
        local.reconcile()
        yield local


def _past_the_grace(node: LocalNode, clock: Clock) -> None:
    """The bridge timer fires as node.py's ``_timers`` would: at its deadline, or later."""
    due = node.bridge.deadline_ms()
    assert due is not None, "no delete grace is running"
    clock.now = due + 40
    node.on_timer()


def test_a_recreate_reported_after_the_grace_keeps_the_peers_line(
    node: LocalNode, clock: Clock
) -> None:
    path = node.root / "t1.md"
    path.write_text(START)
    node.feed("t1.md")
    assert node.repo.get("t1") is not None
    # The person's editor saves: delete first (the watcher reports it) ...
    editor_buffer = START + "my line\n"
    path.unlink()
    clock.now = 2_000
    node.feed("t1.md")
    # ... and writes the file again; under load the watcher reports it only after the
    # grace. A peer edits the item meanwhile, on the state before the save; its line
    # arrives once the grace has ended, before the watcher's late report.
    peer_edit = Remote().edit(node, "t1", lambda text: text + "peer line\n")
    path.write_text(editor_buffer)
    _past_the_grace(node, clock)
    node.receive("t1", peer_edit, "peer-b")
    node.feed("t1.md")  # the watcher's late report
    clock.now += 500
    node.on_timer()
    text = render(node, "t1")
    assert text is not None, "the save was taken for a delete"
    assert "my line" in text
    assert "peer line" in text
    assert path.read_text() == text
    assert node.bridge.deadline_ms() is None


def test_a_path_still_missing_when_the_grace_ends_is_deleted(node: LocalNode, clock: Clock) -> None:
    path = node.root / "t1.md"
    path.write_text(START)
    node.feed("t1.md")
    path.unlink()
    clock.now = 2_000
    node.feed("t1.md")
    _past_the_grace(node, clock)
    assert render(node, "t1") is None
    assert not path.exists()
