"""The one decision point: :class:`Authorizer` and its ``decide`` entry.

One Authorizer per process holds the model, the policy files, the stored bindings and
the token grants, and answers every authorization question of mcpd, mcplocal and the
CLI's offline tooling. ``decide`` never raises: any unexpected error is a deny. A token
is allowed only what its own bindings allow *and* what its creator is allowed now.

Around it, each in its own module and re-exported here: :mod:`authz.decision` (the
answer and its reason), :mod:`authz.ceiling` (``covers``: what a granter lacks),
:mod:`authz.explain` (``policy explain``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authz.bindings import RoleBinding, parse_binding
from authz.ceiling import Missing
from authz.ceiling import clone_bindings as _clone_bindings
from authz.ceiling import covers as _covers
from authz.decision import Decision, decision_for, request_problem
from authz.explain import Explanation
from authz.explain import explain as _explain
from authz.fallback import Fallback
from authz.index import PolicyIndex
from authz.policy import Rule, default_model_path, default_policy_dir, gc_paused, load_policy_dir
from authz.reference import load_model, model_differences
from authz.revision import Revision
from authz.vocabulary import NO_PROJECT, OPERATION_PREFIX, ROLE_PREFIX, TOKENS_GROUP

__all__ = [
    "Authorizer",
    "Decision",
    "Explanation",
    "Listener",
    "Missing",
    "PolicyEvent",
    "TokenGrant",
]

log = logging.getLogger("authz")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the engine must know of an McpToken to apply SPEC §4's token rules."""

    sha: str
    project: str
    creator: str  # the creator's subject, e.g. "User:alice"
    name: str = ""
    expires_at: float | None = None  # epoch seconds; None = never
    revoked: bool = False
    creator_disabled: bool = False  # the creator's account is disabled: denied until enabled

    @property
    def subject(self) -> str:
        return f"McpToken:{self.sha}"


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """One change to an Authorizer, for followers that keep a copy (mcplocal) to replay.

    ``reload`` means the whole state was rebuilt: a follower takes a new snapshot."""

    added: tuple[Rule, ...] = ()
    removed: tuple[Rule, ...] = ()
    tokens: tuple[TokenGrant, ...] = ()
    tokens_removed: tuple[str, ...] = ()
    reload: bool = False


Listener = Callable[[PolicyEvent], None]


class _RuleLog:
    """Every rule in policy order, as a multiset that removes first occurrences.

    The rule -> positions map is built on the first lookup: loading only appends."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: dict[int, Rule] = dict(enumerate(rules))
        self._next = len(self._rules)
        self._where_map: dict[Rule, list[int]] | None = None

    @property
    def _where(self) -> dict[Rule, list[int]]:
        if self._where_map is None:
            where: dict[Rule, list[int]] = {}
            for seq, rule in self._rules.items():
                where.setdefault(rule, []).append(seq)
            self._where_map = where
        return self._where_map

    def add(self, rule: Rule) -> None:
        self._rules[self._next] = rule
        if self._where_map is not None:
            self._where_map.setdefault(rule, []).append(self._next)
        self._next += 1

    def has_exact(self, rule: Rule) -> bool:
        """Is this very rule (same values *and* source, e.g. one database row) here?"""
        return any(self._rules[seq].source == rule.source for seq in self._where.get(rule, ()))

    def remove(self, rule: Rule) -> bool:
        """Remove one occurrence: the one from the same source if there is one, else the first."""
        where = self._where
        seqs = where.get(rule)
        if not seqs:
            return False
        same = [i for i, seq in enumerate(seqs) if self._rules[seq].source == rule.source]
        del self._rules[seqs.pop(same[0] if same else 0)]
        if not seqs:
            del where[rule]
        return True

    def __iter__(self) -> Any:
        return iter(list(self._rules.values()))

    def __len__(self) -> int:
        return len(self._rules)


class Authorizer:
    """Model + policy files + stored bindings + token grants, and the decisions over them.

    ``stored`` are the rules kept in mcpd's database (mcpd.policystore); the
    policy files are read-only. After a transaction that changed stored rules commits,
    the caller reports the change with :meth:`apply`; :meth:`reload` rebuilds
    everything and swaps it in atomically.
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        policy_dir: Path | None = None,
        stored: Iterable[Rule] = (),
        tokens: Iterable[TokenGrant] = (),
        use_index: bool = True,
    ) -> None:
        self.model_path = model_path or default_model_path()
        self.policy_dir = policy_dir or default_policy_dir()
        self._write = threading.Lock()  # serialises writers; readers never wait on it
        self._reference_lock = threading.Lock()  # casbin's evaluator is not thread-safe
        self._listeners: list[Listener] = []
        model = load_model(self.model_path)
        self.model_notes = tuple(model_differences(model))
        self.indexed = use_index and not self.model_notes
        if self.model_notes and use_index:
            log.warning(
                "model %s differs from the indexed model; deciding with the plain "
                "Casbin enforcer (slow): %s",
                self.model_path,
                "; ".join(self.model_notes),
            )
        self._file_rules = load_policy_dir(self.policy_dir)
        self._build(stored, tokens)

    # -- building ---------------------------------------------------------------

    def _build(self, stored: Iterable[Rule], tokens: Iterable[TokenGrant]) -> None:
        grants = {t.sha: t for t in tokens}
        with gc_paused():
            rules = _RuleLog(
                [*self._file_rules, *stored, *(self._token_link(g) for g in grants.values())]
            )
            index = PolicyIndex(rules)
        reference = None if self.indexed else Fallback(self.model_path, rules)
        # One assignment each; a reader sees either the old or the new state.
        self._state = (rules, index, reference)
        self._tokens = grants
        self._revision: Revision | None = None  # computed when first asked for

    def reload(self, stored: Iterable[Rule], tokens: Iterable[TokenGrant] | None = None) -> None:
        """Rebuild from the policy files, ``stored`` rules and tokens, then swap it in."""
        with self._write:
            self._file_rules = load_policy_dir(self.policy_dir)
            self._build(stored, self._tokens.values() if tokens is None else tokens)
            self._notify(PolicyEvent(reload=True))

    def apply(
        self, added: Iterable[Rule] = (), removed: Iterable[Rule] = (), *, exact: bool = False
    ) -> None:
        """Make a committed change to stored rules visible (incremental, no rebuild).

        With ``exact``, rules are matched by source too (each names its database row): a
        rule already here is not added twice, one not here is not removed - for replaying
        changes that a reload may already have brought in.
        """
        added, removed = list(added), list(removed)
        with self._write:
            if exact:
                rules = self._state[0]
                added = [r for r in added if not rules.has_exact(r)]
                removed = [r for r in removed if rules.has_exact(r)]
            self._apply(added, removed)
            self._notify(PolicyEvent(added=tuple(added), removed=tuple(removed)))

    def _apply(self, added: list[Rule], removed: list[Rule]) -> None:
        rules, index, _ = self._state
        index.remove(removed)
        index.add(added)
        gone = [rule for rule in removed if rules.remove(rule)]
        for rule in added:
            rules.add(rule)
        if self._revision is not None:
            self._revision.rules(added, gone)
        if not self.indexed:
            self._state = (rules, index, Fallback(self.model_path, rules))

    @staticmethod
    def _token_link(grant: TokenGrant) -> Rule:
        return Rule("g", (grant.subject, TOKENS_GROUP), f"token {grant.name or grant.sha[:12]}")

    def register_token(self, grant: TokenGrant) -> None:
        """Tell the engine a token exists (its project, creator, expiry, revocation)."""
        with self._write:
            old = self._tokens.get(grant.sha)
            tokens = dict(self._tokens)
            tokens[grant.sha] = grant
            self._tokens = tokens
            if self._revision is not None:
                self._revision.grants([grant], [old] if old is not None else [])
            if old is None:
                self._apply([self._token_link(grant)], [])
            self._notify(PolicyEvent(tokens=(grant,)))

    def unregister_token(self, sha: str) -> None:
        with self._write:
            grant = self._tokens.get(sha)
            if grant is None:
                return
            tokens = dict(self._tokens)
            del tokens[sha]
            self._tokens = tokens
            if self._revision is not None:
                self._revision.grants([], [grant])
            self._apply([], [self._token_link(grant)])
            self._notify(PolicyEvent(tokens_removed=(sha,)))

    # -- followers ----------------------------------------------------------------

    def follow(self, listener: Listener) -> tuple[list[Rule], list[TokenGrant]]:
        """Call ``listener`` with every later change; return the stored rules and tokens now.

        Registering and reading happen under the writers' lock, so the state returned plus
        the events that follow are exactly this engine's state: nothing missed, nothing
        twice. ``listener`` runs under that lock: it must only hand the event on.
        """
        with self._write:
            self._listeners.append(listener)
            stored = [r for r in self._state[0] if r.source.startswith("db:")]
            return stored, list(self._tokens.values())

    def unfollow(self, listener: Listener) -> None:
        with self._write:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, event: PolicyEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # one broken follower must not stop a change
                log.exception("policy listener failed")

    def token(self, sha: str) -> TokenGrant | None:
        return self._tokens.get(sha)

    @property
    def revision(self) -> str:
        """The policy revision decisions are made under now (:mod:`authz.revision`): the
        model, every rule and every token grant, as a short hash. Audit records carry it."""
        rev = self._revision
        if rev is None:
            with self._write:
                rev = self._revision
                if rev is None:
                    model = self.model_path.read_text(encoding="utf-8")
                    rev = Revision(model, self._state[0], self._tokens.values())
                    self._revision = rev
        return rev.name

    # -- vocabulary from the policy ---------------------------------------------

    @property
    def index(self) -> PolicyIndex:
        return self._state[1]

    def rules(self) -> list[Rule]:
        """Every rule the engine holds, in policy order."""
        return list(self._state[0])

    def _groups(self, prefix: str) -> set[str]:
        names: set[str] = set()
        for child, parents in self.index.parents("g2").items():
            for name in (child, *parents):
                if name.startswith(prefix):
                    names.add(name[len(prefix) :])
        return names

    def roles(self) -> set[str]:
        """Defined role names (``view``, ``edit``, ...), from the ``g2`` lines."""
        return self._groups(ROLE_PREFIX)

    def operations(self) -> set[str]:
        """Defined operation names (``logs``, ``audit``, ...), from the ``g2`` lines."""
        return self._groups(OPERATION_PREFIX)

    def verbs_of(self, grant: str) -> set[str]:
        """The verbs a role or operation includes (``role:view`` -> {get, list})."""
        if not grant.startswith((ROLE_PREFIX, OPERATION_PREFIX)):
            return {grant}
        return {
            m
            for m in self.index.members_of(grant, "g2")
            if not m.startswith((ROLE_PREFIX, OPERATION_PREFIX))
        }

    def parse_binding(self, text: str) -> RoleBinding:
        return parse_binding(text, roles=self.roles(), operations=self.operations())

    # -- deciding -----------------------------------------------------------------

    def decide(self, subject: str, project: str, kind: str, name: str, action: str) -> Decision:
        """May ``subject`` do ``action`` on ``kind/name`` in ``project``? Never raises."""
        try:
            return self._decide(subject, project, kind, name, action, depth=0)
        except Exception:  # fail closed, whatever went wrong
            log.exception("authorization error; denying %s %s %s/%s", subject, action, kind, name)
            return Decision(False, "internal error while deciding; denied")

    def policy_decision(self, sub: str, proj: str, kind: str, name: str, act: str) -> Decision:
        """The decision by the policy lines alone (no request checks, no token rules): the
        index, or plain Casbin. ``decide`` is the entry point; this is for offline tooling
        (``policy diff``) that asks about stand-in names no request may carry."""
        _, index, fallback = self._state
        if fallback is None:
            return decision_for(index.match(sub, proj, kind, name, act), sub, proj, kind, name, act)
        with self._reference_lock:
            return fallback.decide((sub, proj, kind, name, act))

    def matching_lines(self, sub: str, proj: str, kind: str, name: str, act: str) -> list[Rule]:
        """In fallback mode, every ``p`` line the model's matcher accepts for the request."""
        fallback = self._state[2]
        if fallback is None:
            return self.index.matching_rules(sub, proj, kind, name, act)
        with self._reference_lock:
            return fallback.matching((sub, proj, kind, name, act))

    def _decide(
        self, subject: str, project: str, kind: str, name: str, action: str, *, depth: int
    ) -> Decision:
        problem = request_problem(subject, project, kind, name, action)
        if problem:
            return Decision(False, f"invalid request: {problem}")
        if subject.startswith("McpToken:"):
            return self._decide_token(subject, project, kind, name, action, depth=depth)
        return self.policy_decision(subject, project, kind, name, action)

    def _decide_token(
        self, subject: str, project: str, kind: str, name: str, action: str, *, depth: int
    ) -> Decision:
        grant = self._tokens.get(subject.removeprefix("McpToken:"))
        if grant is None:
            return Decision(False, "unknown token")
        if grant.revoked:
            return Decision(False, "token is revoked")
        if grant.expires_at is not None and grant.expires_at <= time.time():
            return Decision(False, "token has expired")
        if grant.creator_disabled:  # the continuous ceiling: a disabled creator holds nothing
            return Decision(False, f"token's creator {grant.creator} is disabled")
        if project != grant.project:
            return Decision(
                False,
                f"token of project {grant.project} cannot act "
                + ("outside any project" if project == NO_PROJECT else f"in project {project}"),
            )
        own = self.policy_decision(subject, project, kind, name, action)
        if not own.allowed:
            return own
        if depth > 0 or grant.creator.startswith("McpToken:"):
            return Decision(False, "a token's creator must be a user")
        ceiling = self._decide(grant.creator, project, kind, name, action, depth=depth + 1)
        if not ceiling.allowed:
            return Decision(
                False,
                f"token's creator {grant.creator} is not allowed this now: {ceiling.reason}",
                ceiling.rule,
            )
        return Decision(True, f"{own.reason}; creator {grant.creator} is allowed too", own.rule)

    def explain(self, subject: str, project: str, kind: str, name: str, action: str) -> Explanation:
        """The decision with the closures and every matching line, for ``policy explain``."""
        return _explain(self, subject, project, kind, name, action)

    # -- ceilings -------------------------------------------------------------------

    def covers(self, holder: str, requested: Iterable[RoleBinding]) -> list[Missing]:
        """The permissions in ``requested`` that ``holder`` does not hold now (empty: covered).

        See :func:`authz.ceiling.covers`: wildcards are asked as literals, and a deny line
        of the holder's inside a wildcard scope counts as missing too.
        """
        return _covers(self, holder, requested)

    def clone_bindings(self, creator: str, project: str) -> list[RoleBinding]:
        """The creator's bindings that apply in ``project``, scoped to it (token mode clone)."""
        return _clone_bindings(self, creator, project)
