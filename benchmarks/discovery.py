"""Discovery: two real `worksync-p2p up` in network namespaces, found by mDNS alone.

Each run builds two namespaces on a private bridge (``benchmarks.netns``),
gives A a small workspace and B an empty one of the same group, starts both
at once with no ``--peer`` (so only mDNS can make them meet) and times B's
first file equal to A's copy, from the moment both printed ``started``
(store loaded, watcher and mDNS up) and from the moment both were spawned.
Where namespaces cannot be made it reports no row and says why on stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchmarks import corpus
from benchmarks.daemon import user_env
from benchmarks.harness import Goal, Result
from benchmarks.netns import Fabric, Lines, Unavailable
from benchmarks.session import Session, progress
from worksync_p2p.workspace import init

ITEMS = 20
GOAL = Goal(2.0, "<= 2 s")
WAIT_S = 20.0
POLL_S = 0.002  # polling B's folder: another process's files


def discovery_case(session: Session) -> list[Result]:
    runs = session.config.runs(7, 1)
    started: list[float] = []
    spawned: list[float] = []
    for run in range(runs):
        progress(f"discovery: run {run + 1}/{runs}")
        try:
            after_start, after_spawn = _one_run(session, run)
        except Unavailable as why:
            progress(f"discovery: skipped, {why}")
            return []
        started.append(after_start)
        spawned.append(after_spawn)
    note = (
        f"2 `up` processes, {ITEMS} items on A, none on B, no --peer; B's folder"
        f" polled every {POLL_S * 1000:.0f} ms"
    )
    return [
        Result(
            "discovery: mDNS in namespaces, both started -> first file on B",
            tuple(started),
            goal=GOAL,
            note=note,
        ),
        Result(
            "discovery: ... both spawned -> first file on B",
            tuple(spawned),
            note="includes Python start-up and imports",
        ),
    ]


def _one_run(session: Session, run: int) -> tuple[float, float]:
    base = session.fresh_dir(f"discovery-{run}-")
    a, b = base / "a", base / "b"
    secret = init(a).workspace.load_secret()
    init(b, secret=secret)
    corpus.write_corpus(a, ITEMS, session.config.seed)
    wanted = {p.relative_to(a).as_posix(): p.read_bytes() for p in a.rglob("*.md")}
    fabric = Fabric(2)
    try:
        fabric.build()
        env = user_env(base)
        spawn_at = time.monotonic()
        nodes = [
            Lines(
                fabric.spawn(
                    i, _up(root, fabric.addresses[i]), stderr=base / f"{i}.stderr", env=env
                ),
                time.monotonic,
            )
            for i, root in enumerate((a, b))
        ]
        synced_at = _first_file(b, wanted, nodes)
        both_started = max(n.find("started")[0]["t"] for n in nodes)
        return synced_at - float(both_started), synced_at - spawn_at
    finally:
        fabric.close()
        session.discard(base)


def _up(root: Path, address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "worksync_p2p",
        "up",
        str(root),
        "--host",
        address,
        "--port",
        "0",
        "--interface",
        address,
        "--json",
    ]


def _first_file(root: Path, wanted: dict[str, bytes], nodes: list[Lines]) -> float:
    """When ``root`` first held one of the ``wanted`` files whole (and both had started)."""
    deadline = time.monotonic() + WAIT_S
    for _ in range(int(WAIT_S / POLL_S) + 1):
        now = time.monotonic()
        started = all(n.find("started") for n in nodes)
        if started and any(_read(root / rel) == data for rel, data in wanted.items()):
            return now
        if now > deadline or any(n.process.poll() is not None for n in nodes):
            break
        time.sleep(POLL_S)  # polling another process's files
    raise RuntimeError(f"discovery: no file synced to {root} within {WAIT_S} s")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
