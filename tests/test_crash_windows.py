"""A kill -9 between the store keeping a peer's update and the file showing it.

The node makes an update durable before it writes or removes the file for it
(B45), so a kill in between leaves the store ahead of the file, with the
file's record still matching the file. Start-up must finish the job: write
the file (or remove it), and merge a save the user made on the stale file
from the state that file showed, not from the store's newer one (the chaos
run's seed 7: a tag held in the store and missing from the file for good, a
claim replaced without a conflict).

Also the other windows where a save could reach no store: one landing on our
write before the record takes the file's stat, one made as the daemon stops,
and a stop during start-up.

Real processes: ``tests/crash_child.py`` runs the node and kills itself with
SIGKILL at the file write; the next start is a real ``worksync-p2p up``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.crash_child import KEY, PEER_LINE, RELPATH, TEXT, USER_LINE
from tests.nodehelpers import Proc, processes
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.node import _shows_the_change
from worksync_p2p.workspace import init

REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_S = 60.0
UP_S = 30.0
STOP_S = 10.0
LOOPBACK = "127.0.0.1"
OFFLINE_LINE = "a line saved while the daemon was down\n"


def crash(root: Path, mode: str) -> None:
    """The node takes in ``root``'s file, then a peer's update, and is killed at the file."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_child", mode, str(root)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_S,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def stored_render(root: Path) -> str | None:
    """What the store (alone, the daemon stopped) says the item's file should hold."""
    with SqliteStore(init(root).workspace.store_path) as store:
        states = dict(store.load_all())
    repo = Repo(Writer("reader", Hlc("reader"), 0), 1)
    repo.load(KEY, states[KEY])
    item = repo.get(KEY)
    assert item is not None
    return item.render()


def start_and_stop(root: Path) -> list[str]:
    """One real ``up`` (no network) until it reports started, then a clean stop; its lines."""
    with processes() as started:
        proc = Proc("--json", "up", str(root), "--local-only", cwd=root.parent)
        started.append(proc)
        proc.wait_line('"started"', UP_S)
        proc.signal(signal.SIGTERM)
        assert proc.wait(UP_S) == 0, proc.stderr()
        return proc.lines


def folder(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    init(root)
    (root / RELPATH).write_text(TEXT)
    return root


def test_a_peer_edit_stored_but_not_written_before_a_kill_is_written_at_the_next_start(
    tmp_path: Path,
) -> None:
    root = folder(tmp_path)
    crash(root, "edit")
    path = root / RELPATH
    assert stored_render(root) == TEXT + PEER_LINE, "the store kept the peer's edit"
    assert path.read_text() == TEXT, "the kill came before the file write"
    start_and_stop(root)
    # Written during start-up (before "started"): no later update is needed.
    assert path.read_text() == TEXT + PEER_LINE
    before = path.stat()
    start_and_stop(root)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_save_on_the_stale_file_merges_from_what_the_file_showed(tmp_path: Path) -> None:
    """Diffed against the store's state, the save would delete the peer's line unseen."""
    root = folder(tmp_path)
    crash(root, "edit")
    path = root / RELPATH
    assert path.read_text() == TEXT
    path.write_text(TEXT.replace("status: open", "status: doing"))
    start_and_stop(root)
    text = path.read_text()
    assert "status: doing" in text, text
    assert PEER_LINE in text, text
    assert stored_render(root) == text


def test_a_peer_delete_stored_but_not_carried_out_before_a_kill_removes_the_file_at_start(
    tmp_path: Path,
) -> None:
    root = folder(tmp_path)
    crash(root, "delete")
    assert stored_render(root) is None, "the store kept the delete"
    assert (root / RELPATH).read_text() == TEXT, "the kill came before the removal"
    start_and_stop(root)
    assert not (root / RELPATH).exists()


def test_a_write_whose_record_a_power_cut_lost_is_not_merged_from_the_stale_base(
    tmp_path: Path,
) -> None:
    """The state a power cut leaves after the write: the store's last sync kept the
    update and the base, not the write's record nor the base's removal; the user
    then saved on top of the written file. Its lines must not come in twice."""
    root = folder(tmp_path)
    crash(root, "edit")
    path = root / RELPATH
    path.write_text(TEXT + PEER_LINE)  # the write landed; its record did not
    path.write_text(TEXT + PEER_LINE + OFFLINE_LINE)
    start_and_stop(root)
    text = path.read_text()
    assert text.count(PEER_LINE) == 1, text
    assert OFFLINE_LINE in text, text
    assert stored_render(root) == text


def test_a_clean_stop_during_start_up_ends_the_daemon(tmp_path: Path) -> None:
    """SIGTERM after the signal handlers are set and before the watcher reported ready
    (here: while start-up waits for a static peer's first round, which never comes).
    Start-up finishes (reconcile's work is kept, the watcher's catch-up runs), then stops."""
    root = folder(tmp_path)
    with socket.create_server((LOOPBACK, 0)) as silent, processes() as started:
        silent.settimeout(UP_S)
        port = silent.getsockname()[1]
        proc = Proc(
            "--json", "up", str(root), "--host", LOOPBACK, "--port", "0", "--no-mdns",
            "--peer", f"{LOOPBACK}:{port}", cwd=tmp_path,
        )  # fmt: skip
        started.append(proc)
        connection, _ = silent.accept()  # dialled: past reconcile, handlers set
        with connection:
            proc.signal(signal.SIGTERM)
            assert proc.wait(STOP_S) == 0, proc.stderr()


def test_a_save_right_after_our_write_and_before_a_kill_is_taken_in_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The record of our write must not take the stat of a save that landed on top of
    it: start-up would skip the file as unchanged, and the save would reach no store."""
    root = folder(tmp_path)
    crash(root, "saved-over")
    path = root / RELPATH
    assert path.read_text() == TEXT + PEER_LINE + USER_LINE
    assert USER_LINE not in (stored_render(root) or ""), "the kill came before the ingest"
    start_and_stop(root)
    assert stored_render(root) == TEXT + PEER_LINE + USER_LINE


def test_a_save_made_as_the_daemon_stops_is_in_the_store_after_the_next_start(
    tmp_path: Path,
) -> None:
    """Whether the watcher reports it before the stop or not, the save is not lost:
    the stop takes it in, or start-up finds the file unlike its record."""
    root = folder(tmp_path)
    start_and_stop(root)
    with processes() as started:
        proc = Proc("--json", "up", str(root), "--local-only", cwd=tmp_path)
        started.append(proc)
        proc.wait_line('"started"', UP_S)
        (root / RELPATH).write_text(TEXT + USER_LINE)
        proc.signal(signal.SIGTERM)
        assert proc.wait(UP_S) == 0, proc.stderr()
    start_and_stop(root)
    assert stored_render(root) == TEXT + USER_LINE


def test_a_file_shows_a_change_when_it_has_more_of_its_lines_than_not() -> None:
    """How start-up tells a power cut's landed write (base stale) from a kill's stale file."""
    before = "a\nassignee: nobody\nb\n"
    after = "a\nassignee: bob\nb\npeer line\n"
    assert _shows_the_change(after + "offline line\n", before, after)  # written, then saved
    assert not _shows_the_change(before + "offline line\n", before, after)  # never written
    # The user replaced the very line the change set: a tie keeps the base (a conflict
    # at worst), never drops it (the peer's value undone unseen).
    assert not _shows_the_change(
        "a\nassignee: alice\nb\n", "a\nassignee: nobody\nb\n", "a\nassignee: bob\nb\n"
    )
