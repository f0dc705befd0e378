"""A user's save landing between ``write_if``'s (or ``remove_if``'s) check and its rename.

Real files in a temp folder; the seam runs the user's save in that window.
With renameat2 (Linux) the save is found after the swap and put back; the
fallback (no renameat2) repeats the check just before its rename, so these
saves, made before that second check, are caught there too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from worksync_p2p.adapters import files
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import WriteOutcome

OLD = "---\nid: a\n---\nold\n"
OURS = "---\nid: a\n---\nold\npeer line\n"
USERS = "---\nid: a\n---\nold\nuser line\n"

Save = Callable[[Path, str], None]


def save_by_rename(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


def save_in_place(path: Path, text: str) -> None:
    with path.open("r+") as handle:
        handle.truncate(0)
        handle.write(text)


def save_by_recreate(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


SAVES = {"rename": save_by_rename, "in_place": save_in_place, "recreate": save_by_recreate}


@pytest.fixture(params=["renameat2", "fallback"])
def swap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with renameat2 and with the portable fallback."""
    if request.param == "renameat2":
        if files._RENAMEAT2 is None:
            pytest.skip("renameat2 is not available here")
    else:
        monkeypatch.setattr(files, "_RENAMEAT2", None)
    return str(request.param)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("style", sorted(SAVES))
def test_a_save_between_check_and_swap_survives(tmp_path: Path, swap: str, style: str) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)
    outcome = files.write_if(
        tmp_path, "a.md", OURS, content_hash(OLD.encode()),
        before_swap=lambda: SAVES[style](path, USERS),
    )  # fmt: skip
    assert outcome is WriteOutcome.CHANGED
    assert path.read_text() == USERS
    assert leftovers(tmp_path) == []


def test_a_file_created_between_check_and_create_survives(tmp_path: Path, swap: str) -> None:
    path = tmp_path / "a.md"
    outcome = files.write_if(
        tmp_path, "a.md", OURS, None, before_swap=lambda: path.write_text(USERS)
    )
    assert outcome is WriteOutcome.CHANGED
    assert path.read_text() == USERS
    assert leftovers(tmp_path) == []


def test_a_delete_between_check_and_swap_is_not_undone(tmp_path: Path, swap: str) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)
    outcome = files.write_if(
        tmp_path, "a.md", OURS, content_hash(OLD.encode()), before_swap=path.unlink
    )
    assert outcome is WriteOutcome.CHANGED
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_a_write_with_no_race_replaces_and_keeps_the_mode(tmp_path: Path, swap: str) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)
    path.chmod(0o600)
    assert files.write_if(tmp_path, "a.md", OURS, content_hash(OLD.encode())) is (
        WriteOutcome.WRITTEN
    )
    assert path.read_text() == OURS
    assert path.stat().st_mode & 0o777 == 0o600
    assert files.write_if(tmp_path, "b.md", OURS, None) is WriteOutcome.WRITTEN
    assert (tmp_path / "b.md").read_text() == OURS
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("style", sorted(SAVES))
def test_a_save_between_check_and_remove_survives(tmp_path: Path, swap: str, style: str) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)
    removed = files.remove_if(
        tmp_path, "a.md", content_hash(OLD.encode()),
        before_move=lambda: SAVES[style](path, USERS),
    )  # fmt: skip
    assert not removed
    assert path.read_text() == USERS
    assert leftovers(tmp_path) == []


def test_a_remove_with_no_race_removes(tmp_path: Path, swap: str) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)
    assert files.remove_if(tmp_path, "a.md", content_hash(OLD.encode()))
    assert not path.exists()
    assert files.remove_if(tmp_path, "a.md", content_hash(OLD.encode()), before_move=None) is False
    assert leftovers(tmp_path) == []
