"""A first sync's files as the sender shows them (syncproto's SHOWN): taken as the
render of new items, checked later, and a wrong one rewritten from our own render.
Real files, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import init

KEY, NAME = "t1", "t1.md"
TEXT = "---\nid: t1\nstatus: todo\n---\nbody line\n"


def _node(root: Path, stack: ExitStack) -> LocalNode:
    workspace = init(root).workspace
    store = stack.enter_context(SqliteStore(workspace.store_path))
    local = LocalNode(workspace, workspace.load_config(), store)
    local.load()
    local.reconcile()
    return local


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[LocalNode, LocalNode]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / NAME).write_text(TEXT)
    with ExitStack() as stack:
        yield _node(tmp_path / "a", stack), _node(tmp_path / "b", stack)


def _state(node: LocalNode) -> bytes:
    state = node.repo.encoded(KEY)
    assert state is not None
    return state


@pytest.mark.parametrize("many", [False, True])
def test_the_shown_file_is_written_and_checks_out(
    pair: tuple[LocalNode, LocalNode], many: bool
) -> None:
    a, b = pair
    shown = a.items.shown(KEY)
    assert shown == TEXT.encode()  # A's file shows its state
    if many:
        b.receive_many([(KEY, _state(a))], "peer-a", {KEY: shown})
    else:
        b.receive(KEY, _state(a), "peer-a", shown)
    assert (b.root / NAME).read_bytes() == shown
    assert b.unchecked_shown() == 1
    assert b.check_shown(10) == 0
    assert b.shown_wrong == []
    assert (b.root / NAME).read_bytes() == shown


def test_a_file_saved_since_it_was_ingested_is_not_shown(pair: tuple[LocalNode, LocalNode]) -> None:
    a, _ = pair
    (a.root / NAME).write_text(TEXT + "an unread save\n")
    assert a.items.shown(KEY) is None


def test_a_wrong_file_is_rewritten_from_our_render(pair: tuple[LocalNode, LocalNode]) -> None:
    a, b = pair
    wrong = TEXT.replace("body line", "not what the state says").encode()
    b.receive(KEY, _state(a), "peer-a", wrong)
    assert (b.root / NAME).read_bytes() == wrong  # taken on trust first
    assert b.check_shown(10) == 0
    assert b.shown_wrong == [
        f"peer peer-a: its file of item {KEY} does not show its state; rendered here instead"
    ]
    assert (b.root / NAME).read_text() == TEXT
