"""The benchmark suite runs end to end (`python -m benchmarks --quick`).

Speed is measured by the suite, not tested: these tests check that every
benchmark reports a row with numbers, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.foundation import CASES, selected
from benchmarks.harness import Result, markdown_table, percentile

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROW_PREFIXES = (
    "codec: parse",
    "codec: parse + render_head, fields unchanged",
    "codec: parse + render_head, 1 field changed",
    "ingest 200: read+parse files",
    "ingest 200: seed documents",
    "ingest 200: persist, append per item",
    "ingest 200: persist, append_many",
    "ingest 200: total",
    "ingest 200: LocalNode load+reconcile",
    "reopen 200: total",
    "memory 200: RSS after loading all",
    "memory 200: RSS per item",
    "startup 200 unchanged: total",
    "local edit: Repo.ingest, 1 body line changed",
    "local edit: Repo.ingest, 1 field changed",
    "bridge 200: idle CPU per wall second",
    "bridge 200: daemon RSS, idle",
    "bridge 200: atomic save -> event",
    "bridge 200: in-place save -> event",
    "bridge 200: burst of 100 saves, converged after last",
    "peers 200: edit saved on A -> file rewritten on B",
    "peers 200: first sync to an empty peer, spawn -> all files",
    "peers 200: first sync, spawn -> peer joined",
    "peers 200: first sync, spawn -> first file on B",
    "peers 200: reconnect unchanged, bytes on the wire",
    "peers 200: reconnect, spawn -> peer joined",
    "peers 200: reconnect, connect -> digest exchange done",
    *(("discovery: mDNS in namespaces",) if os.geteuid() == 0 else ()),  # namespaces need root
)
VALUE = re.compile(r"^\d+(\.\d+)? (µs|ms|s|KiB|MiB)$")


def run_suite(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--items", "200", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def table_rows(output: str) -> dict[str, list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| benchmark | n runs | median | p99 | goal | note |")
    return {cells[0]: cells for cells in (_cells(line) for line in lines[1:])}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def test_quick_suite_reports_every_benchmark_with_numbers() -> None:
    rows = table_rows(run_suite())
    for prefix in ROW_PREFIXES:
        matching = [name for name in rows if name.startswith(prefix)]
        assert matching, f"no row for {prefix!r} in {sorted(rows)}"
    for name, cells in rows.items():
        runs, median, p99 = cells[1:4]
        assert int(runs) >= 1, name
        assert VALUE.match(median), (name, median)
        assert VALUE.match(p99), (name, p99)


def test_only_and_json_select_one_case() -> None:
    rows = json.loads(run_suite("--only", "codec", "--json"))
    assert {row["name"] for row in rows} == {p for p in ROW_PREFIXES if p.startswith("codec")}
    for row in rows:
        assert row["runs"] >= 1
        assert isinstance(row["median"], float)
        assert isinstance(row["p99"], float)


def test_case_filter_and_percentile() -> None:
    assert [case.name for case in selected("EDIT")] == ["local edit"]
    assert len(selected(None)) == len(CASES)
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile(list(map(float, range(1, 101))), 99) == 99.0
    table = markdown_table([Result("a|b", (1e-6, 2e-6))])
    assert "a\\|b" in table
