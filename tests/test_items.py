"""Finding the item files of a folder: the fast listing agrees with the walk."""

from __future__ import annotations

from pathlib import Path

from worksync_p2p import items


def test_item_relpaths_lists_what_the_walk_finds(tmp_path: Path) -> None:
    root = tmp_path / "w"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "escaped.md").write_text("x")
    for relpath in [
        "top.md",
        "notes.txt",
        ".hidden.md",
        "#draft.md",
        "tasks/a.md",
        "tasks/deeper/b.md",
        ".worksync/state.md",
        ".git/objects.md",
        "tasks/.cache/c.md",
    ]:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text("x")
    (root / "linked").symlink_to(outside)  # a symlinked folder is not entered
    (root / "tasks" / "link.md").symlink_to(outside / "escaped.md")  # nor a symlinked file
    (root / "dangling.md").symlink_to(tmp_path / "missing.md")
    walked = sorted(items.relpath_of(root, p) for p in items.iter_item_files(root))
    assert walked == ["tasks/a.md", "tasks/deeper/b.md", "top.md"]
    assert items.item_relpaths(root) == walked
