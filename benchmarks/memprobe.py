"""Memory probe, run in a fresh process: ``python -m benchmarks.memprobe WORKSPACE``.

Imports what ``up`` imports, notes the RSS, then opens the workspace's store
and starts a LocalNode on it (load + reconcile, as ``up`` does),
and prints one JSON line: baseline and final RSS, peak RSS, documents loaded.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path

import psutil

from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import Workspace


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def main(argv: list[str]) -> int:
    workspace = Workspace(Path(argv[0]))
    baseline = rss()
    with SqliteStore(workspace.store_path) as store:
        node = LocalNode(workspace, workspace.load_config(), store)
        node.load()
        node.reconcile()
        total = rss()
        docs = len(node.repo)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline": baseline, "total": total, "peak": peak_kib * 1024, "docs": docs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
