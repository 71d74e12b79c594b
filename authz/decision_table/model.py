"""A decision table and its results, as data.

:func:`~authz.decision_table.load_table` returns a :class:`DecisionTable`;
:func:`~authz.decision_table.run_table` returns a :class:`TableResult`, one
:class:`CaseResult` per case.

Token names stand for SHA-256 digests (:func:`token_sha`), so a table can name its
McpTokens ``McpToken:ci-bot`` while the engine sees ``McpToken:<sha256>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from authz.decision import Decision
from authz.vocabulary import NO_PROJECT

__all__ = [
    "TOKEN_PREFIX",
    "Case",
    "CaseResult",
    "DecisionTable",
    "Expect",
    "RbacMode",
    "TableBinding",
    "TableGroup",
    "TableResult",
    "TableToken",
    "token_sha",
]

Expect = Literal["allow", "deny"]
RbacMode = Literal["empty", "clone", "bind"]
TOKEN_PREFIX: Final = "McpToken:"  # noqa: S105 - a subject prefix, not a secret


@dataclass(frozen=True, slots=True)
class TableGroup:
    group: str
    members: tuple[str, ...]  # subjects, McpToken names resolved to McpToken:<sha>
    line: int


@dataclass(frozen=True, slots=True)
class TableBinding:
    subjects: tuple[str, ...]  # McpToken names resolved to McpToken:<sha>
    role_bindings: tuple[str, ...]  # as written; parsed against the policy when run
    line: int


@dataclass(frozen=True, slots=True)
class TableToken:
    name: str
    project: str
    creator: str
    rbac: RbacMode  # "bind" when roleBindings are given
    role_bindings: tuple[str, ...]
    revoked: bool
    expired: bool
    line: int

    @property
    def sha(self) -> str:
        return token_sha(self.name)

    @property
    def subject(self) -> str:
        return f"{TOKEN_PREFIX}{self.sha}"


@dataclass(frozen=True, slots=True)
class Case:
    number: int  # 1-based position in `cases`
    name: str
    subject: str  # as written, e.g. McpToken:ci-bot
    decide_as: str  # the subject asked about, e.g. McpToken:<sha256>
    action: str
    kind: str
    object: str
    project: str
    expect: Expect
    reason: str | None
    source: str  # path:line
    object_given: bool = True  # the case has an `object` key (absent: the collection)

    @property
    def label(self) -> str:
        return f"case {self.number}" + (f" `{self.name}`" if self.name else "")

    def request(self) -> str:
        obj = self.kind if not self.object else f"{self.kind}/{self.object}"
        where = (
            "outside any project" if self.project == NO_PROJECT else f"in project {self.project}"
        )
        return f"{self.subject} {self.action} {obj} {where}"


@dataclass(frozen=True, slots=True)
class DecisionTable:
    path: Path
    description: str
    groups: tuple[TableGroup, ...]
    bindings: tuple[TableBinding, ...]
    tokens: tuple[TableToken, ...]
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    decision: Decision
    problems: tuple[str, ...]  # empty when the case passed

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def actual(self) -> Expect:
        return "allow" if self.decision.allowed else "deny"

    @property
    def reason(self) -> str:
        return self.decision.reason


@dataclass(frozen=True, slots=True)
class TableResult:
    table: DecisionTable
    results: tuple[CaseResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)


def token_sha(name: str) -> str:
    """The SHA-256 a table's token named ``name`` stands for."""
    return hashlib.sha256(name.encode()).hexdigest()
