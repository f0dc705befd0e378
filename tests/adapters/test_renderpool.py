"""Render workers: real worker processes on pipes, compared with rendering at home."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil
import pytest
from pycrdt import merge_updates

from tests.nodehelpers import Remote
from tests.test_receive_many import remote_items
from worksync_p2p.adapters import renderpool
from worksync_p2p.core import codec
from worksync_p2p.core.digest import item_hash
from worksync_p2p.core.itemdoc import read_new

START_S = 30.0
EXIT_S = 10.0


@pytest.fixture
def pool() -> Iterator[renderpool.RenderPool]:
    workers = renderpool.RenderPool(2)
    assert workers.start(START_S), "the render workers did not start"
    yield workers
    workers.close()


def updates(count: int) -> list[bytes]:
    return [update for _, update in remote_items(count)[1]]


def at_home(update: bytes) -> renderpool.Rendered:
    text, path, exact = read_new(update)
    return renderpool.Rendered(text, path, item_hash(update) if exact else None)


def test_workers_render_what_the_daemon_renders(pool: renderpool.RenderPool) -> None:
    batch = updates(9)
    pending = pool.submit(batch)
    assert pending is not None
    assert pending.results() == [at_home(u) for u in batch]
    assert pool.rendered == 9


def test_an_update_that_does_not_decode_gets_no_render(pool: renderpool.RenderPool) -> None:
    batch = [*updates(3), b"\xff\x00garbage"]
    pending = pool.submit(batch)
    assert pending is not None
    results = pending.results()
    assert results is not None
    assert results[:3] == [at_home(u) for u in batch[:3]]
    assert results[3] is None


def test_an_update_with_a_part_that_waits_gets_no_digest(pool: renderpool.RenderPool) -> None:
    """Its document does not encode it back (what waits is left out), so the item
    may not sleep on the worker's reads: no digest says so."""
    remote, ((key, genesis),) = remote_items(1)
    edits = []
    for status in ("doing", "done"):
        parsed = codec.parse(f"---\nid: item-0\nstatus: {status}\n---\nbody\n".encode(), "a.md")
        update = remote.repo.ingest(key, "item-0.md", parsed, 2_000).update
        assert update is not None
        edits.append(update)
    waiting = merge_updates(genesis, edits[1])  # without the first edit, which it needs
    pending = pool.submit([genesis, waiting])
    assert pending is not None
    results = pending.results()
    assert results is not None
    assert results[0] is not None
    assert results[0].digest == item_hash(genesis)
    assert results[1] is not None
    assert results[1].digest is None
    assert results == [at_home(genesis), at_home(waiting)]


def test_a_worker_killed_mid_batch_makes_the_daemon_render(pool: renderpool.RenderPool) -> None:
    pending = pool.submit(updates(8))
    assert pending is not None
    pids = pool.pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert pending.results() is None  # the caller renders this batch itself
    assert pool.pids() == []
    assert pool.submit(updates(2)) is None  # and the next ones, for a while
    assert not any(psutil.pid_exists(pid) and _alive(pid) for pid in pids)


def test_closing_the_pool_ends_the_workers(pool: renderpool.RenderPool) -> None:
    pids = pool.pids()
    assert len(pids) == 2
    pool.close()
    assert pool.pids() == []
    assert not any(psutil.pid_exists(pid) and _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_workers_exit_when_their_daemon_is_killed() -> None:
    """A daemon killed with SIGKILL leaves no worker behind: the pipe's end ends them."""
    script = textwrap.dedent(
        f"""
        import sys
        from worksync_p2p.adapters import renderpool
        pool = renderpool.RenderPool(2)
        assert pool.start({START_S})
        print(" ".join(str(pid) for pid in pool.pids()), flush=True)
        sys.stdin.read()
        """
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert daemon.stdout is not None
        pids = [int(pid) for pid in daemon.stdout.readline().split()]
        assert len(pids) == 2
        workers = [psutil.Process(pid) for pid in pids]
        daemon.kill()
        daemon.wait(EXIT_S)
        _, alive = psutil.wait_procs(workers, timeout=EXIT_S)
        assert not [p for p in alive if _alive(p.pid)]  # a zombie has exited too
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(EXIT_S)
        for pipe in (daemon.stdin, daemon.stdout):
            if pipe is not None:
                pipe.close()


def test_idle_workers_stop_and_the_next_batch_starts_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(renderpool, "IDLE_S", 0.2)
    workers = renderpool.RenderPool(1)
    try:
        assert workers.start(START_S)
        first = [psutil.Process(pid) for pid in workers.pids()]
        _, alive = psutil.wait_procs(first, timeout=EXIT_S)
        assert alive == []
        assert workers.pids() == []
        assert workers.start(START_S)
        batch = updates(2)
        pending = workers.submit(batch)
        assert pending is not None
        assert pending.results() == [at_home(u) for u in batch]
    finally:
        workers.close()


def test_a_ctrl_c_for_the_daemon_leaves_the_workers_to_it(pool: renderpool.RenderPool) -> None:
    """SIGINT reaches the whole process group; the daemon stops the workers itself."""
    for pid in pool.pids():
        os.kill(pid, signal.SIGINT)
    batch = updates(2)
    pending = pool.submit(batch)
    assert pending is not None
    assert pending.results() == [at_home(u) for u in batch]


# -- renders asked for ahead of their batch ----------------------------------------------


def test_renders_asked_ahead_are_found_by_their_updates(pool: renderpool.RenderPool) -> None:
    first, second = updates(20)[:10], updates(20)[10:]
    ahead = renderpool.Ahead()
    ahead.ask(pool, first, 4)
    ahead.ask(pool, second, 4)
    assert all(ahead.asked(u) for u in first + second)
    # Taken across the two requests, in another order and cut: found by bytes.
    wanted = second[:3] + first[5:]
    assert ahead.take(wanted) == {u: at_home(u) for u in wanted}
    assert not any(ahead.asked(u) for u in wanted)
    rest = first[:5] + second[3:]
    assert ahead.take(rest) == {u: at_home(u) for u in rest}
    assert pool.rendered == 20


def test_few_updates_or_too_many_bytes_are_not_asked_ahead(
    pool: renderpool.RenderPool,
) -> None:
    ahead = renderpool.Ahead()
    ahead.ask(pool, updates(3), 4)
    big = [u + bytes(pool.room()) for u in updates(4)]  # more than the pipes hold
    ahead.ask(pool, big, 4)
    assert not any(ahead.asked(u) for u in updates(3) + big)
    assert ahead.take(updates(3)) == {}
    assert pool.rendered == 0


def test_renders_asked_for_from_workers_stopped_since_are_left_to_the_daemon(
    pool: renderpool.RenderPool, caplog: pytest.LogCaptureFixture
) -> None:
    batch = updates(8)
    ahead = renderpool.Ahead()
    ahead.ask(pool, batch, 4)
    pool.close()  # the idle stop, say
    assert ahead.take(batch) == {}  # the caller renders them
    assert not any(ahead.asked(u) for u in batch)
    assert "render workers stopped" not in caplog.text  # not a failure: no retry delay
    assert pool.start(START_S), "the next batch starts them again"
    assert pool.submit(batch) is not None


def test_a_request_nobody_took_is_collected_when_more_are_asked(
    pool: renderpool.RenderPool,
) -> None:
    batches = [updates(30)[i : i + 10] for i in (0, 10, 20)]
    ahead = renderpool.Ahead()
    for batch in batches:  # the first is never taken (its link ended, say)
        ahead.ask(pool, batch, 4)
    # Two requests queue at most: the third collected the first.
    assert pool.rendered == 10
    assert ahead.take(batches[2]) == {u: at_home(u) for u in batches[2]}
    assert pool.rendered == 30
    assert ahead.take(batches[0]) == {u: at_home(u) for u in batches[0]}  # kept meanwhile


def test_a_batch_sent_behind_a_queued_request_gets_its_own_renders(
    pool: renderpool.RenderPool,
) -> None:
    """Workers answer in order: a direct batch sent while a request asked ahead
    is still unread must not be given that request's renders (other items')."""
    queued, direct = updates(40)[:20], updates(40)[20:]
    ahead = renderpool.Ahead()
    ahead.ask(pool, queued, 4)
    pending = pool.submit(direct)
    assert pending is not None
    assert pending.results() == [at_home(u) for u in direct]  # collected first
    assert ahead.take(queued) == {u: at_home(u) for u in queued}  # kept meanwhile


def long_items(count: int, body_bytes: int) -> list[bytes]:
    """Full updates of items with long bodies (their renders are as long)."""
    remote = Remote()
    out = []
    for n in range(count):
        text = f"---\nid: long-{n}\n---\n" + "word " * (body_bytes // 5) + "\n"
        parsed = codec.parse(text.encode(), f"long-{n}.md")
        update = remote.repo.ingest(f"long-{n}", f"long-{n}.md", parsed, 1_000).update
        assert update is not None
        out.append(update)
    return out


def test_a_batch_is_cut_between_the_workers_by_bytes(pool: renderpool.RenderPool) -> None:
    """One big item and many small: the big one's worker gets few others (a
    slice cut by count would put half the bytes, and the wait, on one side)."""
    small = updates(10)
    batch = [*long_items(1, 16_384), *small[1:]]
    pending = pool.submit(batch)
    assert pending is not None
    assert [part.count for part in pending.slices] == [1, 9]
    assert pending.results() == [at_home(u) for u in batch]


def test_requests_whose_replies_overfill_the_pipes_are_answered(
    pool: renderpool.RenderPool,
) -> None:
    """Two batches sent before either is collected, each rendering to more than
    a pipe holds: while the second is written, the replies to the first are
    read (the worker, blocked writing them, reads no request meanwhile)."""
    per_worker = pool.room() * 2  # a whole pipe of renders per worker, and more
    first = long_items(2 * per_worker // 60_000 + 2, 60_000)
    second = long_items(len(first), 60_001)
    pending_first = pool.submit(first)
    pending_second = pool.submit(second)
    assert pending_first is not None
    assert pending_second is not None
    assert pending_second.results() == [at_home(u) for u in second]
    assert pending_first.results() == [at_home(u) for u in first]


def test_warmed_workers_are_seen_ready_by_the_room_they_give() -> None:
    """``warm`` does not wait; the room asked for later looks again, so the
    first batch after a warm start can be asked for ahead."""
    workers = renderpool.RenderPool(1)
    try:
        workers.warm()
        [worker] = workers._workers
        assert select.select([worker.from_fd], [], [], START_S)[0], "the worker did not start"
        assert workers.room() > 0
    finally:
        workers.close()
