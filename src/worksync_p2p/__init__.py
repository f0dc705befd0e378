"""worksync-p2p: serverless, live sync of markdown work items."""

__version__ = "0.1.0"
