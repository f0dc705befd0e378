"""A daemon that notes when each stage of the edit path starts and ends.

``python -m benchmarks.stagetrace OUT ARGS...`` runs the CLI (``worksync_p2p
ARGS...``) with thin wrappers around the calls an edit passes through, on the
saving peer and on the receiving one: the doorbell, watchfiles' batch, the
read, the bridge, the store's commits and fsyncs, the event, the frames, the
file write. Each wrapper notes ``(label, perf_counter_ns)`` at entry (``>``)
and exit (``<``); the notes go to OUT as JSON when the process exits.
``perf_counter`` is CLOCK_MONOTONIC, shared by every process on the machine,
so the notes of two daemons and the benchmark's own stamps line up.

Only benchmarks use this; the package has no trace points of its own. The
wrappers look the names up at call time, so they work against any source
tree whose functions carry these names (an older one is measured alike; a
name it lacks is skipped).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Notes = list[tuple[str, int]]

POINTS: tuple[tuple[str, str, str], ...] = (
    # (module, attribute path, label)
    ("worksync_p2p.adapters.doorbell", "Doorbell.wait", "ring"),
    ("worksync_p2p.adapters.watcher", "Watcher._deliver", "collected"),
    ("worksync_p2p.node", "LocalNode.on_changes", "loop"),
    ("worksync_p2p.node", "LocalNode.feed", "feed"),
    ("worksync_p2p.adapters.files", "RealFiles.read", "read"),
    ("worksync_p2p.node", "LocalNode._save_bases", "bases"),
    ("worksync_p2p.node", "LocalNode.save_clock", "clock"),
    ("worksync_p2p.core.bridge", "Bridge.on_file", "ingest"),
    ("worksync_p2p.adapters.sqlite_store", "SqliteStore.sync", "sync"),
    ("worksync_p2p.adapters.sqlite_store", "SqliteStore._fsync_wal", "fsync-wal"),
    ("worksync_p2p.adapters.eventsock", "EventBus.publish", "emit"),
    ("worksync_p2p.adapters.peering", "Peering.broadcast", "broadcast"),
    ("worksync_p2p.core.frames", "Session.seal", "seal"),
    ("worksync_p2p.core.frames", "Session.open", "open"),
    ("worksync_p2p.node", "LocalNode.receive", "receive"),
    ("worksync_p2p.node", "LocalNode._apply_and_store", "apply"),
    ("worksync_p2p.adapters.sqlite_store", "SqliteStore.sync_ahead", "ahead"),
    ("worksync_p2p.core.bridge", "Bridge.on_remote", "render"),
    ("worksync_p2p.adapters.files", "write_if", "write"),
    ("worksync_p2p.adapters.files", "_write_temp", "temp"),
    ("worksync_p2p.adapters.files", "_replace", "swap"),
    ("worksync_p2p.adapters.watcher", "Watcher._deliver_paths", "handed"),
)


def _wrapped(function: Callable[..., Any], label: str, notes: Notes) -> Callable[..., Any]:
    clock = time.perf_counter_ns
    enter, leave = f"{label}>", f"{label}<"

    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        notes.append((enter, clock()))
        try:
            return function(*args, **kwargs)
        finally:
            notes.append((leave, clock()))

    return traced


def install(notes: Notes) -> list[str]:
    """Wrap every point that exists; the labels of those that do not."""
    missing = []
    for module_name, attribute, label in POINTS:
        module = importlib.import_module(module_name)
        owner_name, _, name = attribute.rpartition(".")
        owner: Any = getattr(module, owner_name) if owner_name else module
        function = getattr(owner, name, None)
        if function is None:
            missing.append(label)
            continue
        setattr(owner, name, _wrapped(function, label, notes))
    return missing


def _dump(path: Path, notes: Notes) -> None:
    path.write_text(json.dumps(notes))


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    notes: Notes = []
    missing = install(notes)
    if missing:
        print(f"stagetrace: not in this tree: {', '.join(missing)}", file=sys.stderr)
    atexit.register(_dump, out, notes)
    from worksync_p2p.cli import main as cli_main  # noqa: PLC0415 - after the wrappers

    return int(cli_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
