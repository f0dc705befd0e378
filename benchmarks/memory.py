"""Benchmark 4: whole-process RSS of a fresh process holding every document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import MIB, Goal, Result, format_value
from benchmarks.session import Session, progress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RSS_GOAL = Goal(150 * MIB, "<= 150 MiB")


def probe(workspace_root: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memprobe", str(workspace_root)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: int(value) for name, value in data.items()}


def memory_case(session: Session) -> list[Result]:
    workspace = session.workspace()
    n = session.config.items
    runs = session.config.runs(3, 2)
    probes = []
    for run in range(runs):
        progress(f"memory probe {run + 1}/{runs}")
        probes.append(probe(workspace.root))
    assert all(p["docs"] == n for p in probes)
    baseline = sorted(p["baseline"] for p in probes)[len(probes) // 2]
    peak = max(p["peak"] for p in probes)
    per_item = tuple((p["total"] - p["baseline"]) / n for p in probes)
    return [
        Result(
            f"memory {n}: RSS after loading all",
            tuple(float(p["total"]) for p in probes),
            "bytes",
            RSS_GOAL,
            note=f"baseline after imports {format_value('bytes', baseline)},"
            f" peak {format_value('bytes', peak)}",
        ),
        Result(
            f"memory {n}: RSS per item",
            per_item,
            "bytes",
            note=f"(total - baseline) / {n}",
        ),
    ]
