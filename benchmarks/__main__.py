"""``python -m benchmarks``: run the suite, print a Markdown table (or JSON)."""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import bridge, discovery, foundation, peers
from benchmarks.harness import Result, as_json, markdown_table
from benchmarks.session import Config, Session, progress

CASES = (
    foundation.CASES
    + bridge.CASES
    + peers.CASES
    + (foundation.Case("discovery", discovery.discovery_case),)
)


def selected(only: str | None) -> list[foundation.Case]:
    """Cases whose name contains ``only`` (case-insensitive); all when None."""
    if only is None:
        return list(CASES)
    return [case for case in CASES + peers.ON_REQUEST if only.lower() in case.name.lower()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs, for smoke tests")
    parser.add_argument(
        "--only",
        metavar="NAME",
        help="run the cases whose name contains NAME: "
        + ", ".join(c.name for c in CASES + peers.ON_REQUEST),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--items", type=int, default=10_000, help="workspace size (10000)")
    parser.add_argument("--seed", type=int, default=Config.seed, help="corpus seed")
    args = parser.parse_args(argv)
    if args.items < 1:
        parser.error("--items must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = selected(args.only)
    if not cases:
        print(f"no benchmark matches {args.only!r}", file=sys.stderr)
        return 2
    config = Config(items=args.items, quick=args.quick, seed=args.seed)
    results: list[Result] = []
    with Session(config) as session:
        for case in cases:
            progress(f"{case.name} ...")
            start = time.perf_counter()
            results += case.run(session)
            progress(f"{case.name} done in {time.perf_counter() - start:.1f} s")
    print(as_json(results) if args.json else markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
