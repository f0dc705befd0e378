"""Network namespaces for mDNS between real processes: built, used, removed.

Network rule: zeroconf multicasts on every interface it is given, so it runs
only inside namespaces made here. Each node namespace has ``lo`` and one veth
whose other end sits on a bridge in a separate "switch" namespace; nothing is
added to the host's own namespace, and every process is bound to its
namespace's 10.77.0.x address. ``close`` ends the processes started here, by
PID, before removing the namespaces (a live process keeps its namespace's
network alive). Shared by the mDNS tests and the discovery benchmark.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

SUBNET = "10.77.0"
IP_TIMEOUT_S = 10.0
STOP_WAIT_S = 5.0
_fabrics = itertools.count()

Event = dict[str, Any]


class Unavailable(Exception):
    """This machine does not let us make network namespaces (the reason says why)."""


def ip_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )


def must(*args: str) -> None:
    done = ip_cmd(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Fabric:
    """``count`` namespaces on one bridge (in a namespace of its own), 10.77.0.11 and up."""

    def __init__(self, count: int) -> None:
        prefix = f"wsm{os.getpid()}x{next(_fabrics)}"
        self.switch = f"{prefix}sw"
        self.names = [f"{prefix}n{i}" for i in range(count)]
        self.addresses = [f"{SUBNET}.{11 + i}" for i in range(count)]
        self.created: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []

    def build(self) -> None:
        """Raises :class:`Unavailable` when namespaces cannot be made here."""
        if os.geteuid() != 0:
            raise Unavailable("network namespaces need root")
        for name in (self.switch, *self.names):
            self._add(name)
        sw = self.switch
        must("-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        must("-n", sw, "link", "set", "br0", "up")
        for i, (name, address) in enumerate(zip(self.names, self.addresses, strict=True)):
            port = f"p{i}"
            must(
                "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name
            )
            must("-n", sw, "link", "set", port, "master", "br0")
            must("-n", sw, "link", "set", port, "up")
            must("-n", name, "link", "set", "lo", "up")
            must("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            must("-n", name, "link", "set", "eth0", "multicast", "on")
            must("-n", name, "link", "set", "eth0", "up")

    def _add(self, name: str) -> None:
        try:
            done = ip_cmd("netns", "add", name)
        except FileNotFoundError:
            raise Unavailable("no `ip` command: cannot create network namespaces") from None
        if done.returncode != 0:
            raise Unavailable(f"cannot create network namespaces: {done.stderr.strip()}")
        self.created.append(name)

    def spawn(
        self, index: int, command: list[str], *, stderr: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """``command`` inside namespace ``index``, its stdout a pipe of text lines."""
        full = ["ip", "netns", "exec", self.names[index], *command]
        with stderr.open("w") as err:
            process = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes.clear()
        for name in reversed(self.created):
            ip_cmd("netns", "del", name)
        self.created.clear()


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_WAIT_S)
    if process.stdout is not None:
        process.stdout.close()


class Lines:
    """A process's JSON lines, collected by a thread; ``at`` adds when each arrived
    (``time.monotonic``, one clock for every namespace) unless the line has one."""

    def __init__(self, process: subprocess.Popen[str], clock: Any) -> None:
        self.process = process
        self.events: list[Event] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a human line: not ours to parse
            if isinstance(event, dict):
                event.setdefault("t", self._clock())
                with self._lock:
                    self.events.append(event)

    def find(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]
