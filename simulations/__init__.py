"""Deterministic simulations: the real sync core driven through fake ports.

Everything here is seeded and single-threaded; nothing imports
``worksync_p2p.adapters``.
"""
