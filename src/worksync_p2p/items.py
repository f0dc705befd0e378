"""Work items as files in a workspace folder: find, read, summarise, create.

This is the I/O side of the codec, shared by the local commands (which work
with no daemon running) and by the node.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worksync_p2p.core import codec, naming

STATE_DIR = ".worksync"


@dataclass(frozen=True)
class LocalItem:
    relpath: str
    key: str
    parsed: codec.ParsedItem

    @property
    def fields(self) -> Mapping[str, Any]:
        return self.parsed.fields or {}


def relpath_of(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def iter_item_files(root: Path) -> Iterator[Path]:
    """Every ``*.md`` file below ``root``, in a stable order, skipping our state folder.

    Symlinked folders are not entered: they may lead out of the workspace.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != STATE_DIR and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            # Symlinked files are not followed: they may point out of the workspace.
            if name.endswith(".md") and not name.startswith((".", "#")) and not path.is_symlink():
                yield path


def item_relpaths(root: Path) -> list[str]:
    """The files of :func:`iter_item_files` as sorted relative paths (``a/b.md``).

    The same walk without a Path per file: at every start-up it lists the
    whole folder, and building, testing and relativising Paths was most of
    the cost of starting on 10,000 unchanged items.
    """
    found: list[str] = []
    folders = [(os.fspath(root), "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue  # gone or unreadable, as os.walk skips it
        for entry in entries:
            if not _is_dir(entry):
                if _is_item_name(entry.name) and not entry.is_symlink():
                    found.append(prefix + entry.name)
            elif _is_enterable(entry):
                folders.append((entry.path, prefix + entry.name + "/"))
    return sorted(found)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False  # as os.walk takes it


def _is_enterable(folder: os.DirEntry[str]) -> bool:
    # Symlinked folders are not entered: they may lead out of the workspace.
    name = folder.name
    return name != STATE_DIR and not name.startswith(".") and not folder.is_symlink()


def _is_item_name(name: str) -> bool:
    return name.endswith(".md") and not name.startswith((".", "#"))


def is_item_path(root: Path, path: Path) -> bool:
    """Whether the watcher should care: a visible ``*.md`` outside hidden folders."""
    if path.suffix != ".md" or path.name.startswith((".", "#")):
        return False
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    return not any(part.startswith(".") for part in parts[:-1])


def read_item(root: Path, path: Path, max_bytes: int = codec.DEFAULT_MAX_BYTES) -> LocalItem:
    """Read and parse one file; raises ``codec.ItemError`` naming it on bad input."""
    relpath = relpath_of(root, path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise codec.ItemError(relpath, f"cannot read: {exc.strerror or exc}") from exc
    parsed = codec.parse(data, relpath, max_bytes)
    return LocalItem(relpath, naming.item_key(parsed.fields, relpath), parsed)


def read_all(
    root: Path, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> tuple[list[LocalItem], list[codec.ItemError]]:
    items: list[LocalItem] = []
    errors: list[codec.ItemError] = []
    for path in iter_item_files(root):
        try:
            items.append(read_item(root, path, max_bytes))
        except codec.ItemError as exc:
            errors.append(exc)
    return items, errors


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def summary_row(item: LocalItem) -> dict[str, str]:
    """The columns of ``list``: status may live at the top or under ``metadata``."""
    fields = item.fields
    status = fields.get("status")
    metadata = fields.get("metadata")
    if status is None and isinstance(metadata, Mapping):
        status = metadata.get("status")
    return {
        "id": _text(fields.get("id")) or item.key,
        "type": _text(fields.get("type")),
        "status": _text(status),
        "summary": _text(fields.get("summary")),
        "path": item.relpath,
    }


def find(items: list[LocalItem], wanted: str) -> LocalItem | None:
    """An item by id, key or relative path."""
    for item in items:
        if wanted in (item.key, item.relpath, _text(item.fields.get("id"))):
            return item
    return None


def new_item_text(item_id: str, item_type: str, summary: str, now: dt.datetime) -> str:
    fields = {
        "id": item_id,
        "type": item_type,
        "summary": summary,
        "status": "open",
        "created_at": now.astimezone(dt.UTC).replace(microsecond=0),
        "updated_at": now.astimezone(dt.UTC).replace(microsecond=0),
    }
    return f"{codec.render_head('', fields)}\n# {summary}\n"


def create_item(
    root: Path, item_type: str, summary: str, rng: random.Random, now: dt.datetime
) -> Path:
    """Write a new item file with a collision-free id; never overwrites a file."""
    for _ in range(8):
        item_id = naming.new_item_id(item_type, summary, rng)
        path = root / f"{item_id}.md"
        text = new_item_text(item_id, item_type, summary, now)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return path
    raise FileExistsError(f"{root}: could not find a free name for a new {item_type}")
