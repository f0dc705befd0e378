"""Invitation codes: the workspace secret plus address hints, in one pasteable line.

The code *is* the membership: whoever holds it can join. It is shown once by
``invite`` and should travel over a channel you trust (it is not encrypted).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

PREFIX = "wsp1-"
SECRET_BYTES = 32


class InviteError(ValueError):
    """A code that is not a worksync-p2p invitation (one-line reason)."""


@dataclass(frozen=True)
class Invitation:
    secret: bytes
    addresses: tuple[str, ...]

    def code(self) -> str:
        payload = {
            "s": base64.urlsafe_b64encode(self.secret).decode(),
            "a": list(self.addresses),
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_code(code: str) -> Invitation:
    code = code.strip()
    if not code.startswith(PREFIX):
        raise InviteError(f"not an invitation code (it should start with {PREFIX!r})")
    body = code[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        payload = json.loads(raw)
        secret = base64.urlsafe_b64decode(payload["s"])
        addresses = tuple(str(a) for a in payload.get("a", []))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InviteError("the invitation code is damaged (copied only in part?)") from None
    if len(secret) != SECRET_BYTES:
        raise InviteError("the invitation code is damaged (wrong secret size)")
    return Invitation(secret, addresses)
