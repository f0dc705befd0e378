"""Two real peers on loopback: an edit crossing over, a first sync, a reconnect.

Peer A's folder of ``items`` corpus files (at most 500 with ``--quick``) is
seeded by a first ``up``, then a second ``up`` of A serves it (steady) for the
whole case. B is a workspace joined with A's invitation that dials A with a
static ``--peer`` (default settings otherwise). Measured in this order, each
with its own B process (``peerruns.py``):

1. first sync: a fresh, empty B per run, from spawning B until B holds every
   file byte-identical to A's;
2. reconnect: the last B (in sync) started again, dialling A through a
   recording proxy (``wiretap.py``): time to "joined", bytes exchanged;
3. edit: an atomic save on A until B's event socket reports the item
   ``modified`` with origin A's peer id.

The table lists them as edit, first sync, reconnect. ``peer-edit`` measures
only the edit (after one first sync), for comparing watcher settings quickly;
``peer-sync`` only the first sync, ``reconnect`` only the reconnect (after one
first sync), for start-up work.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import corpus, peerproc
from benchmarks.foundation import Case
from benchmarks.harness import Goal, Laps, Result, format_value, percentile
from benchmarks.peerruns import (
    POLL_S,
    SAMPLE,
    START_TIMEOUT_S,
    Pair,
    edits,
    first_sync,
    first_syncs,
    reconnects,
)
from benchmarks.peerwire import WIRE_GOAL, Wire, wire_note
from benchmarks.session import Config, Session, progress
from worksync_p2p import commands
from worksync_p2p.workspace import init

EDIT_GOAL = Goal(0.010, "<= 10 ms")
EDIT_P99_LIMIT = 0.025
SYNC_GOAL = Goal(5.0, "<= 5 s")
JOIN_GOAL = Goal(0.5, "<= 0.5 s")
QUICK_ITEMS = 500
SEED_TIMEOUT_S = 900.0


def item_count(config: Config) -> int:
    return min(config.items, QUICK_ITEMS) if config.quick else config.items


def _seed(session: Session, n: int) -> tuple[Path, Path, str]:
    """A's folder of ``n`` items, ingested by a first ``up``; (root, folder, invite code)."""
    root = session.fresh_dir("peers-")
    folder = root / "a"
    corpus.write_corpus(folder, n, session.config.seed)
    init(folder)
    code = str(commands.invite(folder)["code"])
    progress(f"peers: first `up` of A seeds {n} items")
    with peerproc.running(folder, root) as seeding:
        seconds = seeding.started(SEED_TIMEOUT_S).at - seeding.spawned
    progress(f"peers: seeded in {seconds:.1f} s")
    return root, folder, code


# -- rows ---------------------------------------------------------------------------


def _median(laps: Laps, name: str) -> str:
    return format_value("time", statistics.median(laps.samples[name]))


def _edit_row(n: int, laps: Laps) -> Result:
    p99 = percentile(laps.samples["edit"], 99.0)
    verdict = "met" if p99 <= EDIT_P99_LIMIT else "MISSED"
    floor_p99 = format_value("time", percentile(laps.samples["edit floor"], 99.0))
    note = (
        "atomic save on A -> B's `modified` event with origin A; watcher floor (A's own"
        f" event): median {_median(laps, 'edit floor')}, p99 {floor_p99}; A's event -> B's"
        f" event: median {_median(laps, 'edit hop')}; B's file checked at the end;"
        f" p99 <= 25 ms {verdict}"
    )
    label = f"peers {n}: edit saved on A -> file rewritten on B"
    return laps.result("edit", label, EDIT_GOAL, note)


def _sync_rows(n: int, laps: Laps) -> list[Result]:
    note = (
        f"fresh joined B dials A; file count polled every {POLL_S * 1000:.0f} ms, then"
        f" {SAMPLE} files byte-compared (all {n} after the last run); CPU until done,"
        f" medians: B {_median(laps, 'sync cpu B')} (with its render workers),"
        f" A {_median(laps, 'sync cpu A')}"
    )
    label = f"peers {n}: first sync to an empty peer, spawn -> all files"
    return [
        laps.result("sync", label, SYNC_GOAL, note),
        laps.result("sync joined", f"peers {n}: first sync, spawn -> peer joined", note="B's line"),
        laps.result("sync file", f"peers {n}: first sync, spawn -> first file on B"),
    ]


def _reconnect_rows(n: int, laps: Laps, wires: list[Wire]) -> list[Result]:
    exchanged = tuple(float(w.exchange) for w in wires)
    joined_note = (
        f"medians: B serving after {_median(laps, 'reconnect serving')},"
        f" dialled the proxy after {_median(laps, 'reconnect connect')},"
        f" digest exchange done after {_median(laps, 'reconnect done')}"
    )
    return [
        Result(
            f"peers {n}: reconnect unchanged, bytes on the wire",
            exchanged,
            "bytes",
            WIRE_GOAL,
            wire_note(wires),
        ),
        laps.result(
            "reconnect joined",
            f"peers {n}: reconnect, spawn -> peer joined",
            JOIN_GOAL,
            joined_note,
        ),
        laps.result(
            "reconnect exchange",
            f"peers {n}: reconnect, connect -> digest exchange done",
            note="the last chunk that is not a heartbeat",
        ),
    ]


def _pair(root: Path, folder: Path, code: str, n: int, up_a: peerproc.Peer) -> Pair:
    """A, started and serving, as the pair's fixed side."""
    event = up_a.started(START_TIMEOUT_S).event
    address, peer_id = str(event["address"]), str(event["peer_id"])
    return Pair(root, folder, code, n, address, peer_id, up_a.pid)


def peers_case(session: Session) -> list[Result]:
    n = item_count(session.config)
    root, folder, code = _seed(session, n)
    laps = Laps()
    with peerproc.running(folder, root) as up_a:
        pair = _pair(root, folder, code, n, up_a)
        b = first_syncs(session, pair, laps)
        wires = reconnects(session, pair, b, laps)
        edits(session, pair, b, laps)
    session.discard(root)
    return [_edit_row(n, laps), *_sync_rows(n, laps), *_reconnect_rows(n, laps, wires)]


@contextmanager
def _levelled(session: Session) -> Iterator[tuple[Pair, Path, Laps]]:
    """A running A and a B brought level by one first sync, for the rows measured after it."""
    n = item_count(session.config)
    root, folder, code = _seed(session, n)
    laps = Laps()
    with peerproc.running(folder, root) as up_a:
        pair = _pair(root, folder, code, n, up_a)
        b = root / "b0"
        progress("peers: one first sync")
        first_sync(pair, b, laps)
        yield pair, b, laps
    session.discard(root)


def peer_edit_case(session: Session) -> list[Result]:
    """Only the edit row: one first sync brings B level, then the edits."""
    with _levelled(session) as (pair, b, laps):
        edits(session, pair, b, laps)
    return [_edit_row(item_count(session.config), laps)]


def peer_sync_case(session: Session) -> list[Result]:
    """Only the first-sync rows (three runs), for working on the receiving side."""
    n = item_count(session.config)
    root, folder, code = _seed(session, n)
    laps = Laps()
    with peerproc.running(folder, root) as up_a:
        first_syncs(session, _pair(root, folder, code, n, up_a), laps)
    session.discard(root)
    return _sync_rows(n, laps)


def reconnect_case(session: Session) -> list[Result]:
    """Only the reconnect rows: one first sync brings B level, then the restarts."""
    with _levelled(session) as (pair, b, laps):
        wires = reconnects(session, pair, b, laps)
    return _reconnect_rows(item_count(session.config), laps, wires)


CASES: tuple[Case, ...] = (Case("peers", peers_case),)
ON_REQUEST: tuple[Case, ...] = (
    Case("peer-edit", peer_edit_case),
    Case("peer-sync", peer_sync_case),
    Case("reconnect", reconnect_case),
)
"""Run only when named with ``--only``: they repeat rows of the full cases."""
