"""Real implementations of the ports: SQLite, files, the clock, the network."""
