"""Try worksync-p2p on one machine: N peers on loopback, each with its own folder.

    python peers/loopback.py [--peers 3] [--dir ./demo] [--corpus DIR]

Creates DIR/peer-1 ... DIR/peer-N (one workspace group: the first is
initialised, the others join it with an invitation), copies the corpus into
the first, starts one `worksync-p2p up` per folder on 127.0.0.1 with static
peers, and prints their events. Edit any file in any folder and watch the
others follow. Ctrl-C stops every peer it started (and only those).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from worksync_p2p import commands
from worksync_p2p.workspace import init

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent / "tests" / "fixtures" / "corpus"


def prepare(base: Path, count: int, corpus: Path) -> list[Path]:
    roots = [base / f"peer-{i}" for i in range(1, count + 1)]
    init(roots[0])
    code = commands.invite(roots[0])["code"]
    for root in roots[1:]:
        commands.join(code, root)
    for item in sorted(corpus.glob("*.md")):
        target = roots[0] / item.name
        if not target.exists():
            shutil.copy(item, target)
    return roots


def start(root: Path, peers: list[str]) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "worksync_p2p", "--json", "up", str(root)]
    args += ["--host", "127.0.0.1", "--port", "0"]
    for address in peers:
        args += ["--peer", address]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for _ in range(50):
        event = json.loads(process.stdout.readline() or "{}")
        if event.get("event") == "started":
            return process, str(event["address"])
    process.terminate()
    raise SystemExit(f"{root}: the peer did not start")


def echo(name: str, stream: IO[str]) -> None:
    for line in stream:
        print(f"[{name}] {line.rstrip()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("demo"))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    roots = prepare(args.dir.resolve(), args.peers, args.corpus)
    processes: list[subprocess.Popen[str]] = []
    addresses: list[str] = []
    try:
        for root in roots:
            process, address = start(root, addresses)
            processes.append(process)
            addresses.append(address)
            print(f"{root.name}: {root} listening on {address}", flush=True)
            assert process.stdout is not None
            threading.Thread(target=echo, args=(root.name, process.stdout), daemon=True).start()
        print("Edit files in any folder; Ctrl-C stops the peers.", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
