"""The sans-I/O core: no asyncio, no sockets, no wall clock, no global randomness.

Time (``now_ms``) and a ``random.Random`` are passed in by the caller, so the
simulations can replay any run from its seed.
"""
