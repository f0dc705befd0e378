"""Whole-workspace costs: first ingest, reopening the store, startup reconcile."""

from __future__ import annotations

import gc
from pathlib import Path

from benchmarks.harness import Goal, Laps, Result
from benchmarks.session import (
    Session,
    new_repo,
    open_node,
    progress,
    seed_all,
    update_rows,
)
from worksync_p2p import items
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.workspace import init

REOPEN_GOAL = Goal(1.0, "<= 1 s")
RECONCILE_GOAL = Goal(2.0, "<= 2 s")


def _ingest_once(session: Session, laps: Laps) -> None:
    root = session.fresh_dir("ingest-")
    folder = root / "items"
    session.write_corpus(folder)
    with laps.lap("read"):
        found, errors = items.read_all(folder)
    assert not errors
    assert len(found) == session.config.items
    with laps.lap("seed"):
        updates = seed_all(new_repo(), found)
    with SqliteStore(root / "each.sqlite3") as store, laps.lap("append"):
        for key, update in updates:
            store.append(key, update)
    with SqliteStore(root / "batch.sqlite3") as store, laps.lap("append_many"):
        store.append_many(updates)
    laps.add("total", sum(laps.samples[name][-1] for name in ("read", "seed", "append")))
    del found, updates
    _first_up(folder, laps)
    session.discard(root)


def _first_up(folder: Path, laps: Laps) -> None:
    node = open_node(init(folder).workspace)
    try:
        gc.collect()
        with laps.lap("node"):
            node.load()
            node.reconcile()
    finally:
        node.store.close()


def ingest_case(session: Session) -> list[Result]:
    """Benchmark 2: files -> documents -> store, on a fresh folder each run."""
    laps = Laps()
    runs = session.config.runs(3, 2)
    for run in range(runs):
        progress(f"ingest run {run + 1}/{runs}")
        _ingest_once(session, laps)
    n = session.config.items
    return [
        laps.result("read", f"ingest {n}: read+parse files", note="items.read_all"),
        laps.result("seed", f"ingest {n}: seed documents", note="Repo.ingest per item"),
        laps.result("append", f"ingest {n}: persist, append per item", note="what LocalNode does"),
        laps.result(
            "append_many", f"ingest {n}: persist, append_many", note="one batch, one commit"
        ),
        laps.result("total", f"ingest {n}: total (read+seed+append)", note="sum of the above"),
        laps.result(
            "node",
            f"ingest {n}: LocalNode load+reconcile, new folder",
            note="first `up` end to end",
        ),
    ]


def reopen_case(session: Session) -> list[Result]:
    """Benchmark 3: open the store and restore every document, as ``up`` starts."""
    store_path = session.workspace().store_path
    laps = Laps()
    for _ in range(session.config.runs(7, 3)):
        gc.collect()
        repo = new_repo()
        with laps.lap("total"):
            with laps.lap("open"):
                store = SqliteStore(store_path)
            with laps.lap("load_all"):
                states = list(store.load_all())
            with laps.lap("load"):
                for key, state in states:
                    repo.load(key, state)
        # Documents stay encoded until used; bringing every one to life is the
        # cost of "restore every document exactly", measured on its own.
        with laps.lap("materialize"):
            for key, _ in states:
                assert repo.get(key) is not None
        store.close()
        assert len(repo) == session.config.items
        del repo, states
    n = session.config.items
    return [
        laps.result("open", f"reopen {n}: SqliteStore open"),
        laps.result("load_all", f"reopen {n}: load_all", note="read + merge rows"),
        laps.result("load", f"reopen {n}: Repo.load each", note="kept encoded until used"),
        laps.result(
            "materialize", f"reopen {n}: then bring every doc to life", note="apply_update per doc"
        ),
        laps.result("total", f"reopen {n}: total", REOPEN_GOAL, note="warm OS page cache"),
    ]


def reconcile_case(session: Session) -> list[Result]:
    """Benchmark 5: LocalNode load + reconcile over an unchanged, ingested folder."""
    workspace = session.workspace()
    rows = update_rows(workspace.store_path)
    laps = Laps()
    runs = session.config.runs(5, 2)
    for run in range(runs):
        progress(f"reconcile run {run + 1}/{runs}")
        gc.collect()
        with laps.lap("total"):
            node = open_node(workspace)
            with laps.lap("load"):
                node.load()
            with laps.lap("reconcile"):
                count = node.reconcile()
        node.store.close()
        assert count == session.config.items
        assert update_rows(workspace.store_path) == rows
        del node
    n = session.config.items
    return [
        laps.result("load", f"startup {n} unchanged: LocalNode.load"),
        laps.result("reconcile", f"startup {n} unchanged: reconcile", note="writes no update"),
        laps.result("total", f"startup {n} unchanged: total", RECONCILE_GOAL),
    ]
