"""Process-level chaos: real ``worksync-p2p up`` processes on loopback, under faults.

``python -m simulations chaos --seed N``. The deterministic simulation
(``simulations.world``) runs the sync core under a virtual clock; this mode
runs the real daemons (watcher, SQLite, WebSockets, handshake, signals) and
hurts them from outside: kill -9 at chosen moments, clean stops, links cut or
stalled by a proxy between every pair of peers, edits through real files in
the three editor styles. Then the same checks on the real folders and stores.

Modules: ``plan`` (the seeded schedule, a pure function of the seed),
``proxy`` (the loopback link proxies), ``procs`` (one daemon process),
``files`` (people editing real files; the ledger of markers), ``checks`` (the
end-state checks) and ``runner`` (plays a plan and judges it).
"""
