"""``python -m simulations run``: run seeds, print what failed and how to reproduce it."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from simulations.world import Result, rare_collections, run_seed

SECONDS_PER_MINUTE = 60


def _seeds(text: str) -> range:
    first, _, last = text.partition("..")
    return range(int(first), int(last or first) + 1)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulations")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run seeds of the deterministic simulation")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="one seed (with --minutes: the first seed)")
    which.add_argument("--seeds", type=_seeds, help="a range A..B (inclusive)")
    run.add_argument("--minutes", type=float, help="soak: run consecutive seeds this long")
    run.add_argument("--peers", type=int, default=5)
    run.add_argument("--ops", type=int, default=200)
    run.add_argument("-v", "--verbose", action="store_true", help="one line per seed")
    run.add_argument(
        "--old-ops", action="store_true", help="without the ops added later (swarm.LATER_OP_KINDS)"
    )
    chaos = sub.add_parser("chaos", help="real `up` processes on loopback under kills and cuts")
    chaos_which = chaos.add_mutually_exclusive_group()
    chaos_which.add_argument("--seed", type=int, default=0)
    chaos_which.add_argument("--seeds", type=_seeds, help="a range A..B (inclusive)")
    chaos.add_argument("--peers", type=int, default=3)
    chaos.add_argument("--seconds", type=float, default=10.0, help="length of the faulty phase")
    chaos.add_argument("--keep", type=Path, help="keep the folders and logs under this folder")
    chaos.add_argument("-v", "--verbose", action="store_true", help="history of passing seeds")
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Iterator[int]:
    if args.minutes is not None:
        # Wall-clock time only decides how many seeds run, never what a seed does.
        stop = time.monotonic() + args.minutes * SECONDS_PER_MINUTE
        seed = args.seed if args.seed is not None else 0
        while time.monotonic() < stop:
            yield seed
            seed += 1
        return
    if args.seeds is not None:
        yield from args.seeds
        return
    yield args.seed if args.seed is not None else 0


def report(result: Result) -> str:
    lines = [f"FAIL seed {result.seed}: {len(result.problems)} problem(s)"]
    lines += [f"  - {problem}" for problem in result.problems[:20]]
    lines.append(f"  swarm: {result.swarm.describe()}")
    lines.append(f"  stats: {result.stats}")
    lines.append("  last operations:")
    lines += [f"    {line}" for line in result.recent]
    lines.append(f"  reproduce: {result.command()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "chaos":
        from simulations.chaos import runner  # noqa: PLC0415 - only this mode needs it

        seeds = args.seeds if args.seeds is not None else range(args.seed, args.seed + 1)
        return runner.main(seeds, args.peers, args.seconds, args.verbose, args.keep)
    # The node logs warnings (a write refused, a file left alone) that a run provokes on purpose.
    logging.getLogger("worksync_p2p").setLevel(logging.CRITICAL)
    started = time.monotonic()
    combined = hashlib.sha256()
    failed: list[int] = []
    count = 0
    last: Result | None = None
    with rare_collections():
        for seed in _plan(args):
            last = run_seed(seed, args.peers, args.ops, later_ops=not args.old_ops)
            count += 1
            combined.update(last.trace_hash.encode())
            if not last.ok:
                failed.append(seed)
                print(report(last), flush=True)
            elif args.verbose:
                print(f"ok seed {seed} hash {last.trace_hash[:16]} {last.stats}", flush=True)
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = count * SECONDS_PER_MINUTE / elapsed
    print(
        f"{count} seed(s), {len(failed)} failed {failed[:50]}; {rate:.1f} seeds/minute"
        f" ({args.peers} peers x {args.ops} ops)"
    )
    if count == 1 and last is not None:
        print(f"trace hash {last.trace_hash}")
    else:
        print(f"trace hash (all seeds) {combined.hexdigest()}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
