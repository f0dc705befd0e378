"""The local commands (list, show, new, conflicts) as real processes on real folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.clihelpers import run_cli as cli
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.workspace import init

CORPUS = Path(__file__).parent / "fixtures" / "corpus"


def cli_json(*args: str, cwd: Path, code: int = 0) -> Any:
    done = cli("--json", *args, cwd=cwd)
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / ".claude-work"
    root.mkdir()
    for path in CORPUS.glob("*.md"):
        shutil.copy(path, root / path.name)
    return root


def test_list_shows_every_item_with_its_columns(folder: Path) -> None:
    listing = cli_json("list", cwd=folder.parent)
    rows = {row["id"]: row for row in listing["items"]}
    assert set(rows) == {
        "plan-multi-session",
        "proposal-real-time-sync-demo",
        "task-fsnotify-research",
        "path:note-no-frontmatter.md",
    }
    assert rows["task-fsnotify-research"]["status"] == "in_progress"
    assert rows["proposal-real-time-sync-demo"]["status"] == "draft"  # under metadata:
    assert rows["plan-multi-session"]["type"] == "plan"
    assert listing["errors"] == []


def test_list_as_a_table(folder: Path) -> None:
    done = cli("list", cwd=folder.parent)
    assert done.returncode == 0
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "STATUS", "SUMMARY", "PATH"]
    assert len(lines) == 4


def test_list_names_a_bad_file_and_still_lists_the_rest(folder: Path) -> None:
    (folder / "broken.md").write_text("---\nstatus: [oops\n---\n")
    done = cli("list", cwd=folder.parent)
    assert done.returncode == 0
    assert "broken.md" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert len(done.stdout.splitlines()) == 5  # header + 4 good items


def test_list_of_a_missing_folder_is_not_found(tmp_path: Path) -> None:
    done = cli("list", "-w", "nowhere", cwd=tmp_path)
    assert done.returncode == 3
    assert "nowhere" in done.stderr


def test_show_by_id_prints_the_file(folder: Path) -> None:
    done = cli("show", "task-fsnotify-research", cwd=folder.parent)
    assert done.returncode == 0
    assert done.stdout == (folder / "task-fsnotify-research.md").read_text()


def test_show_json_has_typed_fields(folder: Path) -> None:
    shown = cli_json("show", "task-fsnotify-research", cwd=folder.parent)
    assert shown["fields"]["priority"] == 2
    assert shown["fields"]["estimate_hours"] == 3.5
    assert shown["fields"]["created_at"] == {"$datetime": "2025-01-12T09:30:00+00:00"}
    assert shown["path"] == "task-fsnotify-research.md"


def test_show_an_unknown_item_is_not_found(folder: Path) -> None:
    done = cli("show", "nope", cwd=folder.parent)
    assert done.returncode == 3
    assert "nope" in done.stderr


def test_new_writes_an_item_with_a_fresh_id_each_time(folder: Path) -> None:
    first = cli_json("new", "task", "Fix the login form", cwd=folder.parent)
    second = cli_json("new", "task", "Fix the login form", cwd=folder.parent)
    assert first["id"] != second["id"]
    assert first["id"].startswith("task-fix-the-login-form-")
    parsed = codec.parse((folder / first["path"]).read_bytes(), first["path"])
    assert parsed.fields is not None
    assert parsed.fields["id"] == first["id"]
    assert parsed.fields["summary"] == "Fix the login form"
    assert parsed.fields["type"] == "task"
    listing = cli_json("list", cwd=folder.parent)
    assert first["id"] in {row["id"] for row in listing["items"]}


def test_new_with_an_empty_summary_is_bad_input(folder: Path) -> None:
    done = cli("new", "task", "  ", cwd=folder.parent)
    assert done.returncode == 5


def test_conflicts_reports_what_the_merge_decided(folder: Path) -> None:
    workspace = init(folder).workspace
    text = (folder / "task-fsnotify-research.md").read_text()
    key, path = "task-fsnotify-research", "task-fsnotify-research.md"
    ours = Repo(Writer("peer-a", Hlc("peer-a"), 0), 1)
    ours.ingest(key, path, codec.parse(text.encode(), path), 1000)
    item = ours.get(key)
    assert item is not None
    theirs = Repo(Writer("peer-b", Hlc("peer-b"), 0), 2)
    theirs.load(key, item.doc.get_update())
    for repo, who, ms in ((ours, "alice", 2000), (theirs, "bob", 3000)):
        edit = text.replace("assignee: session-125", f"assignee: {who}")
        repo.ingest(key, path, codec.parse(edit.encode(), path), ms)
    other = theirs.get(key)
    assert other is not None
    item.apply_remote(other.doc.get_update())
    with SqliteStore(workspace.store_path) as store:
        store.append(key, item.doc.get_update())

    report = cli_json("conflicts", cwd=folder.parent, code=4)
    (conflict,) = report["conflicts"]
    assert conflict["field"] == "assignee"
    assert conflict["kept"]["value"] == "bob"
    assert [o["value"] for o in conflict["others"]] == ["alice"]
    table = cli("conflicts", cwd=folder.parent)
    assert table.returncode == 4
    assert "assignee" in table.stdout


def test_no_conflicts_exits_zero(folder: Path) -> None:
    init(folder)
    done = cli("conflicts", cwd=folder.parent)
    assert done.returncode == 0
    assert "No conflicts" in done.stdout
