"""Decision tables: authorization cases as data, run by ``mcpctl policy test`` and pytest.

A table is one YAML document: a small world (groups, runtime bindings, McpTokens) and
the requests to ask about it, each with the decision it must get::

    description: what this table is about           # optional
    groups:                                         # g lines: group -> members
      Group:devs: [User:bob, Group:interns]
    bindings:                                       # stored bindings (like RbacDefinitions)
      - subjects: [User:alice, Group:devs]
        roleBindings: ["role:edit,resource:servers", "action:logs,project:web"]
    tokens:                                         # McpTokens, named McpToken:<name> below
      ci-bot:
        project: web
        creator: User:alice
        rbac: clone                                 # empty (default) or clone
        roleBindings: ["role:view,resource:servers"] # or explicit bindings (no `rbac`)
        revoked: false                              # optional
        expired: false                              # optional
    cases:
      - name: alice edits servers                   # optional label
        subject: User:alice                         # or McpToken:ci-bot
        action: update
        kind: servers
        object: foo                                 # optional, "" (the collection) if absent
        project: web                                # optional, "" (no project) if absent
        expect: allow                               # allow | deny
        reason: "role:edit"                         # optional: the reason must contain it

A case names the object it asks about with ``object``, not ``name``: ``name`` labels the
case. A key given twice in one mapping is an error (YAML would silently keep the last).

:func:`load_table` checks the whole document and raises :class:`DecisionTableError`
naming the file, line, case and what is wrong. :func:`run_table` builds an
:class:`~authz.engine.Authorizer` over the policy files plus the table's world and asks
:meth:`~authz.engine.Authorizer.decide` every case.

The package: :mod:`~authz.decision_table.model` (the table and its results as data),
:mod:`~authz.decision_table.load` (reading and checking the YAML),
:mod:`~authz.decision_table.run` (deciding every case), :mod:`~authz.decision_table.format`
(a failed case as a small diff).
"""

from authz.decision_table.format import format_case_result, format_result
from authz.decision_table.load import load_table
from authz.decision_table.model import (
    Case,
    CaseResult,
    DecisionTable,
    TableBinding,
    TableGroup,
    TableResult,
    TableToken,
    token_sha,
)
from authz.decision_table.run import run_table

__all__ = [
    "Case",
    "CaseResult",
    "DecisionTable",
    "TableBinding",
    "TableGroup",
    "TableResult",
    "TableToken",
    "format_case_result",
    "format_result",
    "load_table",
    "run_table",
    "token_sha",
]
