"""Role bindings: the ``role:edit,resource:servers[,name:foo][,project:p]`` syntax.

A binding names a role (``role:NAME``) on a resource kind, optionally one object and
optionally one project, or an operation (``action:NAME``) optionally in one project.
It becomes one ``p`` line per subject::

    role:edit,resource:servers,project:web   ->  p, User:bob, web, servers, *, role:edit, allow
    action:logs                              ->  p, User:bob, *, *, *, action:logs, allow
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from authz.errors import BindingError, InvalidName
from authz.policy import ALLOW, Rule
from authz.vocabulary import (
    ANY,
    KINDS,
    OPERATION_PREFIX,
    ROLE_PREFIX,
    check_dns_label,
    check_object_name,
)

_KEYS = ("role", "action", "resource", "name", "project")


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A parsed binding. ``grant`` is ``role:NAME`` or ``action:NAME``; ``*`` means any."""

    grant: str
    kind: str = ANY
    name: str = ANY
    project: str = ANY

    @property
    def is_operation(self) -> bool:
        return self.grant.startswith(OPERATION_PREFIX)

    def __str__(self) -> str:
        parts = [self.grant]
        if not self.is_operation:
            parts.append(f"resource:{self.kind}")
            if self.name != ANY:
                parts.append(f"name:{self.name}")
        if self.project != ANY:
            parts.append(f"project:{self.project}")
        return ",".join(parts)

    def to_rule(self, subject: str, source: str = "") -> Rule:
        return Rule("p", (subject, self.project, self.kind, self.name, self.grant, ALLOW), source)

    def in_project(self, project: str) -> RoleBinding:
        return RoleBinding(self.grant, self.kind, self.name, project)

    @classmethod
    def from_rule(cls, rule: Rule) -> RoleBinding | None:
        """The binding an allow line expresses, or None if it is not a binding (verb, deny)."""
        if rule.ptype != "p" or rule.eft != ALLOW:
            return None
        _, proj, kind, name, act, _ = rule.values
        if act.startswith(OPERATION_PREFIX):
            if kind != ANY or name != ANY:
                return None
            return cls(act, ANY, ANY, proj)
        if act.startswith(ROLE_PREFIX):
            return cls(act, kind, name, proj)
        return None


def parse_binding(text: str, *, roles: Collection[str], operations: Collection[str]) -> RoleBinding:
    """Parse a binding, checking its role or operation against the loaded policy.

    ``roles`` and ``operations`` are the defined names without prefix (``edit``, ``logs``).
    """
    raw = text.strip()
    if not raw:
        raise BindingError("binding is empty: expected e.g. `role:view,resource:servers`")
    fields: dict[str, str] = {}
    for part in raw.split(","):
        key, sep, value = part.strip().partition(":")
        key = key.strip()
        value = value.strip()
        if not sep:
            raise BindingError(
                f"`{part.strip()}` in binding `{raw}` is not `key:value`; keys are "
                + ", ".join(_KEYS)
            )
        if key not in _KEYS:
            raise BindingError(
                f"unknown key `{key}` in binding `{raw}`: expected one of " + ", ".join(_KEYS)
            )
        if key in fields:
            raise BindingError(f"key `{key}` appears twice in binding `{raw}`")
        if not value:
            raise BindingError(f"key `{key}` has an empty value in binding `{raw}`")
        fields[key] = value

    if "role" in fields and "action" in fields:
        raise BindingError(
            f"binding `{raw}` has both `role` and `action`: bind a role on a resource, "
            "or an operation, not both"
        )
    project = fields.get("project", ANY)
    try:
        if project != ANY:
            check_dns_label(project, "project")
    except InvalidName as exc:
        raise BindingError(f"{exc} (in binding `{raw}`)") from exc

    if "action" in fields:
        op = fields["action"]
        for key in ("resource", "name"):
            if key in fields:
                raise BindingError(
                    f"binding `{raw}` gives `{key}` with an operation: an operation "
                    "applies to every resource; only `project` may narrow it"
                )
        if op not in operations:
            raise BindingError(
                f"unknown operation `{op}` in binding `{raw}`; defined operations: "
                + ", ".join(sorted(operations))
            )
        return RoleBinding(OPERATION_PREFIX + op, ANY, ANY, project)

    if "role" not in fields:
        raise BindingError(
            f"binding `{raw}` names neither a role nor an operation: start it with "
            "`role:NAME` or `action:NAME`"
        )
    role = fields["role"]
    if role not in roles:
        raise BindingError(
            f"unknown role `{role}` in binding `{raw}`; defined roles: " + ", ".join(sorted(roles))
        )
    if "resource" not in fields:
        raise BindingError(
            f"binding `{raw}` has no `resource`: say which kind it applies to, e.g. "
            "`resource:servers` (or `resource:*` for every kind)"
        )
    kind = fields["resource"]
    if kind != ANY and kind not in KINDS:
        raise BindingError(
            f"unknown resource kind `{kind}` in binding `{raw}`; kinds: " + ", ".join(KINDS)
        )
    name = fields.get("name", ANY)
    if name != ANY:
        if kind == ANY:
            raise BindingError(
                f"binding `{raw}` names an object on `resource:*`: a name needs a kind"
            )
        try:
            check_object_name(name, kind)
        except InvalidName as exc:
            raise BindingError(f"{exc} (in binding `{raw}`)") from exc
    return RoleBinding(ROLE_PREFIX + role, kind, name, project)
