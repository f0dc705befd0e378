"""aiohttp, imported without loading the system's CA bundle.

When it is imported, aiohttp builds two verifying TLS client contexts, and
loading the CA bundle into them is 40 % of its import: about 470 million
instructions, a tenth of a daemon's start to joined. Peers never use TLS:
their frames are sealed with keys from our own handshake (``core/frames``),
and they dial ``http://`` only. So the bundle is pointed at an empty file
while aiohttp is imported, and the environment is put back at once; any TLS
context made later (by anything else in the process) loads the bundle as
usual. An aiohttp client asked for ``https://`` with its default context
would fail to verify any server, loudly; nothing here asks for one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

CA_FILE_VARIABLE = "SSL_CERT_FILE"
"""Where OpenSSL's default verify paths take the CA bundle from, read at each load."""


@contextlib.contextmanager
def _no_ca_bundle() -> Iterator[None]:
    saved = os.environ.get(CA_FILE_VARIABLE)
    os.environ[CA_FILE_VARIABLE] = os.devnull
    try:
        yield
    finally:
        if saved is None:
            del os.environ[CA_FILE_VARIABLE]
        else:
            os.environ[CA_FILE_VARIABLE] = saved


with _no_ca_bundle():
    import aiohttp
    from aiohttp import web

__all__ = ["aiohttp", "web"]
