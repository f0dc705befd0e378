"""Files a first sync made are read back from memory while they look as made.

Real files: RealFiles.write_new_many, then saves of every kind on top, read
through RealFiles.read as the watcher's feed does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from worksync_p2p.adapters import files
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import WriteOutcome

TEXTS = [(f"item-{n}.md", f"---\nid: item-{n}\n---\nbody {n}\n") for n in range(8)]
MAX = 1 << 20

if not files._ANONYMOUS:
    pytest.skip("no O_TMPFILE here: nothing is remembered", allow_module_level=True)


def _disk_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths RealFiles.read opened (a spy around the real read)."""
    opened: list[Path] = []
    real = files.read_item_bytes

    def spy(path: Path, max_bytes: int) -> bytes | None:
        opened.append(path)
        return real(path, max_bytes)

    monkeypatch.setattr(files, "read_item_bytes", spy)
    return opened


def _clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's file clock one second on: every file made counts as settled."""
    monkeypatch.setattr(files, "_stamp_clock_ns", lambda: time.time_ns() + 10**9)


def test_files_made_are_read_back_without_a_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clock_ahead(monkeypatch)
    fs = files.RealFiles(tmp_path)
    written = fs.write_new_many(TEXTS)
    assert [outcome for outcome, _ in written] == [WriteOutcome.WRITTEN] * len(TEXTS)
    for (relpath, _), (_, stat) in zip(TEXTS, written, strict=True):
        assert stat == files.stat(tmp_path / relpath)  # what the records need, no look
    opened = _disk_reads(monkeypatch)
    assert [fs.read(r, MAX) for r, _ in TEXTS] == [t.encode() for _, t in TEXTS]
    assert opened == []
    assert fs.read(TEXTS[0][0], MAX) == TEXTS[0][1].encode()  # once only: then the disk
    assert opened == [tmp_path / TEXTS[0][0]]


def test_a_file_made_in_the_clock_tick_of_its_look_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save in the same tick would get the same mtime: such files are not remembered."""
    monkeypatch.setattr(files, "_stamp_clock_ns", lambda: 0)
    fs = files.RealFiles(tmp_path)
    fs.write_new_many(TEXTS)
    opened = _disk_reads(monkeypatch)
    assert [fs.read(r, MAX) for r, _ in TEXTS] == [t.encode() for _, t in TEXTS]
    assert len(opened) == len(TEXTS)


def _in_place(path: Path, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.write(data)


def _atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def _keep_times(path: Path, data: bytes) -> None:
    """Replaced by another inode, with the old file's times put back (rsync -t)."""
    before = path.stat()
    _atomic(path, data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("save", [_in_place, _atomic, _keep_times])
def test_a_save_of_the_same_size_after_ours_is_read_from_disk(
    tmp_path: Path, save: Callable[[Path, bytes], None]
) -> None:
    """The real clock: whatever is saved after the write has its own mtime or inode."""
    fs = files.RealFiles(tmp_path)
    fs.write_new_many(TEXTS)
    for relpath, text in TEXTS:
        theirs = text.replace("body", "BODY").encode()
        save(tmp_path / relpath, theirs)
        assert fs.read(relpath, MAX) == theirs


def test_a_file_replaced_by_a_later_write_is_read_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clock_ahead(monkeypatch)
    fs = files.RealFiles(tmp_path)
    fs.write_new_many(TEXTS[:1])
    relpath, text = TEXTS[0]
    digest = content_hash(text.encode())
    assert fs.write_if(relpath, "ours again\n", digest) is WriteOutcome.WRITTEN
    assert fs.read(relpath, MAX) == b"ours again\n"
