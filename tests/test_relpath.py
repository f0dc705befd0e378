"""How the node names a path the watcher reports: always as Path would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.items import relpath_of
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import init


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    workspace = init(tmp_path / "ws").workspace
    with SqliteStore(workspace.store_path) as store:
        yield LocalNode(workspace, workspace.load_config(), store)


@pytest.mark.parametrize(
    "rest",
    [
        "task.md",
        "sub/deeper/task.md",
        "sub//task.md",
        "./task.md",
        "sub/./task.md",
        "sub/",
        ".hidden/task.md",
        "sub/.task.md",
        "a..b.md",
    ],
)
def test_a_reported_path_is_named_as_path_would_name_it(node: LocalNode, rest: str) -> None:
    raw = f"{node.root}/{rest}"
    expected = relpath_of(node.root, Path(raw))
    assert node._relpath(raw) == expected
    assert node._relpath(Path(raw)) == expected
