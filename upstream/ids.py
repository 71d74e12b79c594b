"""Ids that must be unique and not guessable: request ids and audit event ids.

``uuid.uuid4()`` builds a UUID object around its 16 random bytes (~4 us a call, seen in
mcpd's profile of a relayed call); these are the same 16 bytes of kernel randomness as
text (~0.5 us). Not a counter: an audit event id is the key that makes a proxy's retries
idempotent (a record whose id is already stored is skipped), so an id anyone could
predict would let a sender of records pre-empt, and so suppress, mcpd's own.
"""

from __future__ import annotations

import os


def request_id() -> str:
    """A new request id: 32 hex digits, like ``uuid4().hex``."""
    return os.urandom(16).hex()


def event_id() -> str:
    """A new audit event id, shaped like a UUID (36 characters: the column's size)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
