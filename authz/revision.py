"""The policy revision: a short name for the state an :class:`~authz.engine.Authorizer`
decides under, recorded with every audited decision.

It is made of the model file's text, every rule the engine holds (the policy files, the
stored bindings, the token links) and every token grant (project, creator, expiry,
revocation), taken as a multiset: two processes holding the same state - mcpd's replicas,
mcplocal's copy - name it alike however they came by it, and anything that can change a
decision (a binding added, a token revoked, a file edited) names a new one. Comments and
line numbers do not count: they change no decision.

Kept incrementally: a change costs one hash per rule or grant it touches; the name itself
is computed when asked for, and remembered until the next change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

from authz.policy import Rule

_MASK = (1 << 64) - 1


class _Grant(Protocol):  # authz.engine.TokenGrant
    @property
    def sha(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def creator(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def creator_disabled(self) -> bool: ...


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _rule(rule: Rule) -> int:
    return _h("\x1f".join(("rule", rule.ptype, *rule.values)))


def _grant(g: _Grant) -> int:
    fields = (g.sha, g.project, g.creator, g.name, g.expires_at, g.revoked, g.creator_disabled)
    return _h("grant\x1f" + repr(fields))


class Revision:
    """The multiset sum behind a revision name (writers hold the engine's lock)."""

    def __init__(self, model_text: str, rules: Iterable[Rule], grants: Iterable[_Grant]) -> None:
        self._model = hashlib.sha256(model_text.encode()).hexdigest()
        self._sum = (sum(map(_rule, rules)) + sum(map(_grant, grants))) & _MASK
        self._name: str | None = None

    def rules(self, added: Iterable[Rule] = (), removed: Iterable[Rule] = ()) -> None:
        delta = sum(map(_rule, added)) - sum(map(_rule, removed))
        self._sum = (self._sum + delta) & _MASK
        self._name = None

    def grants(self, added: Iterable[_Grant] = (), removed: Iterable[_Grant] = ()) -> None:
        delta = sum(map(_grant, added)) - sum(map(_grant, removed))
        self._sum = (self._sum + delta) & _MASK
        self._name = None

    @property
    def name(self) -> str:
        """12 hex digits (48 bits): a name to compare and to quote, not a secret."""
        name = self._name
        if name is None:
            name = hashlib.sha256(f"{self._model}:{self._sum:016x}".encode()).hexdigest()[:12]
            self._name = name
        return name
