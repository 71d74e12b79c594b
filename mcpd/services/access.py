"""Access questions about the policy, asked of mcpd: a subject's access list and who-can.

* :func:`access_list` - what a subject may do (``mcpctl auth can-i --list``). About oneself
  any caller may ask; about another subject (``--as``) needs the ``impersonate`` operation
  in the project asked about (``*`` when no project is given), as ``can-i --as`` does:
  it tells what the other subject could do, so it is the same power.
* :func:`who_can` - every subject allowed a request (``mcpctl auth who-can``). It needs the
  ``who-can`` operation on the object asked about (its project, kind and name): it reveals
  other subjects' access to that object, so it is granted per object like any verb
  (``action:who-can,project:web`` lets a project's reviewer ask about that project only).

Both answer the documents the offline ``mcpctl policy`` commands print with ``-o json``
(schema version 1); a token's hash is shown as its name, as everywhere in mcpd.
"""

from __future__ import annotations

import re
from typing import Any

from authz import Authorizer, AuthzError
from authz.access import access_list as _access_list
from authz.access import access_list_json
from authz.decision import request_problem
from authz.vocabulary import ANY
from authz.whocan import who_can as _who_can
from authz.whocan import who_can_json
from mcpd.errors import Forbidden, Invalid
from mcpd.principal import Principal

SCHEMA_VERSION = 1
_TOKEN = re.compile(r"McpToken:([0-9a-f]{64})")

__all__ = ["access_list", "who_can"]


def _require(
    authorizer: Authorizer, p: Principal, verb: str, kind: str, name: str, project: str, why: str
) -> None:
    decision = authorizer.decide(p.subject, project, kind, name, verb)
    if not decision.allowed:
        raise Forbidden(
            f"{why} needs the {verb} operation: {p.redact(decision.reason)}",
            missing=[{"verb": verb, "kind": kind, "name": name, "project": project}],
        )


def _named(authorizer: Authorizer, text: str) -> str:
    """``McpToken:<sha256>`` as ``McpToken:<name>`` (token hashes stay in mcpd)."""

    def name(m: re.Match[str]) -> str:
        grant = authorizer.token(m.group(1))
        return f"McpToken:{grant.name}" if grant is not None and grant.name else m.group(0)

    return _TOKEN.sub(name, text)


def _document(authorizer: Authorizer, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _named(authorizer, value) if "McpToken:" in value else value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return {"schemaVersion": SCHEMA_VERSION, "kind": kind, **walk(body)}


def access_list(
    authorizer: Authorizer, p: Principal, subject: str | None, project: str | None
) -> dict[str, Any]:
    """The ``AccessList`` document of ``subject`` (default: the caller)."""
    if subject and subject != p.subject:
        where = ANY if project is None else project
        _require(
            authorizer, p, "impersonate", ANY, ANY, where, "reading another subject's access list"
        )
    else:
        subject = p.subject
    try:
        result = _access_list(authorizer, subject, project)
    except AuthzError as exc:
        raise Invalid(str(exc)) from exc
    return _document(authorizer, "AccessList", access_list_json(result))


def who_can(
    authorizer: Authorizer, p: Principal, verb: str, kind: str, name: str, project: str
) -> dict[str, Any]:
    """The ``WhoCan`` document of a request."""
    problem = request_problem(p.subject, project, kind, name, verb)
    if problem:
        raise Invalid(f"invalid request: {problem}")
    _require(authorizer, p, "who-can", kind, name, project, "asking who may do something")
    result = _who_can(authorizer, verb, kind, name, project)
    return _document(authorizer, "WhoCan", who_can_json(result))
