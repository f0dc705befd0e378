"""``python -m worksync_p2p``: the same as the ``worksync-p2p`` command."""

from worksync_p2p.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
