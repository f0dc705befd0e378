"""The file bridge, measured against a real ``worksync-p2p up`` process.

One folder of ``items`` corpus files is seeded by a first ``up``; a second
``up`` (steady state) is then measured: idle CPU and RSS, save -> event
latency (atomic and in-place saves, each measured alone), and how soon the
stored document matches the last of a burst of 100 saves.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks import daemon
from benchmarks.corpus import STATUSES, relpath
from benchmarks.foundation import Case
from benchmarks.harness import Goal, Laps, Result, format_value, percentile
from benchmarks.session import Session, progress
from worksync_p2p import items
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core.itemdoc import ItemDoc
from worksync_p2p.workspace import Workspace

SAVE_GOAL = Goal(0.010, "<= 10 ms")
SAVE_P99_LIMIT = 0.025
IDLE_GOAL = Goal(0.007, "<= 7 ms/s (0.7 % of a core)")
BURST_GOAL = Goal(0.100, "<= 100 ms")

SEED_TIMEOUT_S = 900.0
START_TIMEOUT_S = 300.0
EVENT_TIMEOUT_S = 5.0
SETTLE_S = 1.0  # after "serving", before idle CPU is measured
GAP_S = 0.05  # between one save's event and the next save
WARMUP_SAVES = 3
BURST_SAVES = 100
BURST_INTERVAL_S = 0.010
QUIET_S = 0.5
BURST_TIMEOUT_S = 10.0
ITEM_INDEX = 0
STATUS_LINE = re.compile(r"^status: .*$", re.MULTILINE)

Save = Callable[[Path, bytes], float]


def save_atomic(path: Path, data: bytes) -> float:
    """An editor-style save: write a temp file, then rename it over the item."""
    temp = path.with_name(f".{path.name}.bench-tmp")
    temp.write_bytes(data)
    start = time.perf_counter()
    os.replace(temp, path)
    return start


def save_in_place(path: Path, data: bytes) -> float:
    start = time.perf_counter()
    path.write_bytes(data)
    return start


@dataclass
class Editor:
    """Saves of one item: alternately one body line and the ``status`` field changed."""

    path: Path
    key: str
    base: str
    status: str
    saves: int = 0

    @classmethod
    def open(cls, folder: Path, index: int) -> Editor:
        path = folder / relpath(index)
        item = items.read_item(folder, path)
        return cls(path, item.key, path.read_text(), str(item.fields.get("status")))

    def next(self) -> tuple[bytes, tuple[str, ...]]:
        """The next file text, and the fields its event should name."""
        self.saves += 1
        status = STATUSES[(self.saves // 2) % 2]
        changed = ("status",) if status != self.status else ()
        self.status = status
        text = STATUS_LINE.sub(f"status: {status}", self.base, count=1)
        text += f"\nBench save {(self.saves + 1) // 2}.\n"
        return text.encode(), changed


def _matches(key: str, fields: tuple[str, ...]) -> Callable[[dict[str, Any]], bool]:
    def wanted(event: dict[str, Any]) -> bool:
        return (
            event.get("event") == "modified"
            and event.get("id") == key
            and event.get("origin") == "file"
            and tuple(event.get("fields") or ()) == fields
        )

    return wanted


# -- save -> event --------------------------------------------------------------


def _timed_save(stream: daemon.EventStream, editor: Editor, save: Save) -> tuple[float, bool, int]:
    """Seconds from the save to its event, whether a field changed, stray events seen."""
    data, fields = editor.next()
    start = save(editor.path, data)
    arrival, skipped = stream.wait_for(_matches(editor.key, fields), start + EVENT_TIMEOUT_S)
    time.sleep(GAP_S)  # the next save starts on an idle daemon
    return arrival.at - start, bool(fields), skipped


def save_latency(
    stream: daemon.EventStream, editor: Editor, save: Save, name: str, *, runs: int, laps: Laps
) -> int:
    """``runs`` saves, each waiting for its event; returns the stray events seen."""
    stray = 0
    for run in range(WARMUP_SAVES + runs):
        seconds, field, skipped = _timed_save(stream, editor, save)
        stray += skipped
        if run >= WARMUP_SAVES:
            laps.add(name, seconds)
            laps.add(f"{name} {'field' if field else 'body'}", seconds)
    return stray


def _save_row(laps: Laps, name: str, label: str, how: str, stray: int) -> Result:
    samples = laps.samples[name]
    p99 = percentile(samples, 99.0)
    verdict = "met" if p99 <= SAVE_P99_LIMIT else "MISSED"
    body, field = (statistics.median(laps.samples[f"{name} {part}"]) for part in ("body", "field"))
    split = f"body line {format_value('time', body)}, field {format_value('time', field)}"
    note = f"{how}; medians: {split}; p99 <= 25 ms {verdict}"
    if stray:
        note += f"; {stray} other events"
    return laps.result(name, label, SAVE_GOAL, note)


# -- idle -------------------------------------------------------------------------


def _cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def idle_usage(pid: int, seconds: float, windows: int) -> tuple[list[float], list[float]]:
    """CPU seconds per wall second and RSS of ``pid``, one sample per window."""
    process = psutil.Process(pid)
    time.sleep(SETTLE_S)
    cpu, rss = [], []
    for _ in range(windows):
        before, start = _cpu_seconds(process), time.perf_counter()
        time.sleep(seconds / windows)
        cpu.append((_cpu_seconds(process) - before) / (time.perf_counter() - start))
        rss.append(float(process.memory_info().rss))
    return cpu, rss


def _idle_rows(n: int, cpu: list[float], rss: list[float], seconds: float) -> list[Result]:
    share = sorted(cpu)[len(cpu) // 2] * 100
    span = f"{len(cpu)} x {seconds / len(cpu):.0f} s windows from {SETTLE_S:.0f} s after start"
    return [
        Result(
            f"bridge {n}: idle CPU per wall second",
            tuple(cpu),
            "time",
            IDLE_GOAL,
            note=f"= {share:.2f} % of one core, psutil user+system; {span}",
        ),
        Result(f"bridge {n}: daemon RSS, idle", tuple(rss), "bytes", note="end of each window"),
    ]


# -- burst ------------------------------------------------------------------------


def stored_text(store_path: Path, key: str) -> str | None:
    """The item as the daemon's store holds it, rendered to file text."""
    with SqliteStore(store_path) as store:
        state = store.load(key)
    if state is None:
        return None
    item = ItemDoc.new(1)
    item.doc.apply_update(state)
    return item.render()


def burst(stream: daemon.EventStream, editor: Editor, store_path: Path) -> tuple[float, int]:
    """Seconds from the last of 100 saves to the last event after it; events seen."""
    arrivals: list[daemon.Arrival] = []
    next_at = time.perf_counter()
    last, data = 0.0, b""
    for _ in range(BURST_SAVES):
        data, _ = editor.next()
        last = save_atomic(editor.path, data)
        next_at += BURST_INTERVAL_S
        arrivals += stream.until(next_at)  # stamps events as they come
    arrivals += stream.until_quiet(QUIET_S, last + BURST_TIMEOUT_S)
    ours = [a.at for a in arrivals if a.event.get("id") == editor.key]
    after = [at for at in ours if at > last]
    if not after:
        raise RuntimeError("no event followed the last save of the burst")
    if stored_text(store_path, editor.key) != data.decode():
        raise RuntimeError("after the burst the stored document is not the last save")
    return after[-1] - last, len(ours)


# -- the case ---------------------------------------------------------------------


def _seeded_folder(session: Session) -> tuple[Path, Path]:
    """A corpus folder that a first ``up`` has already ingested; (its parent, it)."""
    root = session.fresh_dir("bridge-")
    folder = root / "items"
    session.write_corpus(folder)
    progress(f"bridge: first `up` seeds {session.config.items} items")
    with daemon.running(folder, root, SEED_TIMEOUT_S) as seeding:
        progress(f"bridge: seeded, serving after {seeding.ready_s:.1f} s")
    return root, folder


def _measure(
    session: Session, up: daemon.Daemon, stream: daemon.EventStream, laps: Laps
) -> list[Result]:
    config = session.config
    n = config.items
    seconds, windows = config.runs(30, 3), config.runs(3, 1)
    progress(f"bridge: idle for {seconds} s")
    cpu, rss = idle_usage(up.pid, seconds, windows)
    rows = _idle_rows(n, cpu, rss, seconds)
    editor = Editor.open(up.root, ITEM_INDEX)
    saves = config.runs(300, 30)
    for name, save, how in (
        ("atomic", save_atomic, "temp file + os.replace"),
        ("in-place", save_in_place, "truncate + write"),
    ):
        progress(f"bridge: {saves} {name} saves")
        stray = save_latency(stream, editor, save, name, runs=saves, laps=laps)
        rows.append(_save_row(laps, name, f"bridge {n}: {name} save -> event", how, stray))
    rows.append(_burst_row(session, up, stream, editor, laps))
    return rows


def _burst_row(
    session: Session, up: daemon.Daemon, stream: daemon.EventStream, editor: Editor, laps: Laps
) -> Result:
    bursts = session.config.runs(10, 2)
    store_path = Workspace(up.root).store_path
    events = []
    for run in range(bursts):
        progress(f"bridge: burst {run + 1}/{bursts}")
        seconds, count = burst(stream, editor, store_path)
        laps.add("burst", seconds)
        events.append(count)
    note = (
        f"{BURST_SAVES} atomic saves {BURST_INTERVAL_S * 1000:.0f} ms apart; last event"
        f" after the last save, store checked; {min(events)}-{max(events)} events per burst"
    )
    label = f"bridge {session.config.items}: burst of {BURST_SAVES} saves, converged after last"
    return laps.result("burst", label, BURST_GOAL, note)


def bridge_case(session: Session) -> list[Result]:
    root, folder = _seeded_folder(session)
    laps = Laps()
    with (
        daemon.running(folder, root, START_TIMEOUT_S) as up,
        daemon.subscribed(folder, EVENT_TIMEOUT_S) as stream,
    ):
        progress(f"bridge: second `up` serving after {up.ready_s:.1f} s")
        rows = _measure(session, up, stream, laps)
    session.discard(root)
    return rows


CASES: tuple[Case, ...] = (Case("bridge", bridge_case),)
