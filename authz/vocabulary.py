"""The nouns and verbs of authorization: subjects, resource kinds, verbs and names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from authz.errors import InvalidName

#: Resource kinds (SPEC §4). A tool's name is ``<server>__<tool>``, a prompt's
#: ``<server>__<prompt>``, a resource's ``<server>__<uri>`` (the URI as the server lists it).
KINDS: Final = (
    "users",
    "groups",
    "projects",
    "servers",
    "secrets",
    "rbac",
    "mcptokens",
    "serviceaccounts",
    "instances",
    "auditevents",
    "tools",
    "prompts",
    "resources",
)

#: The kinds whose objects are parts of an MCP server, named ``<server>__<part>``: a policy
#: line on ``servers/NAME`` covers every one of them of that server (the model's matcher).
SERVER_PARTS: Final = ("tools", "prompts", "resources")

#: Verbs the product asks about besides operations (operations are declared in policy):
#: CRUD and run, and the capability verbs - ``exec`` (what a stdio server runs), ``use``
#: (a secretRef to a secret) and ``attach`` (a server to a project).
CRUD_VERBS: Final = ("get", "list", "create", "update", "delete", "run", "exec", "use", "attach")

#: The value that means "any" in a policy line's project, kind and name.
ANY: Final = "*"

#: Project of a request made outside any project.
NO_PROJECT: Final = ""

ROLE_PREFIX: Final = "role:"
OPERATION_PREFIX: Final = "action:"

#: Every McpToken is a member of this group (mcpd links it); policy files can deny it things.
TOKENS_GROUP: Final = "Group:system:mcptokens"

SubjectType = Literal["User", "Group", "McpToken", "ServiceAccount"]

# DNS label: lowercase alphanumerics and '-', 1-63, not starting or ending with '-'.
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Users are emails or plain names. Nothing that can break a CSV row or the matcher:
# no comma, parenthesis, bracket, quote or white space.
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,253}$")
# Built-in groups look like `system:NAME`; users cannot create them (':' is not in a DNS label).
_GROUP_NAME = re.compile(r"^(system:)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Object names in requests and bindings: DNS labels, user names, and tool names
# (`<server>__<tool>`, tool part [A-Za-z0-9_.-]).
_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,254}$")
_TOOL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?__[A-Za-z0-9_.-]{1,128}$")
_SERVER = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?__"
# A prompt or a resource URI in a binding or policy line: what a policy value may hold
# (authz.policy: no white space, comma, quote or bracket; URIs with others are granted by
# their server, or by a prompt or resource line on `*`)...
_PART_NAME = re.compile(rf"^{_SERVER}[A-Za-z0-9._@+:*/?=&%#~-]{{1,2048}}$")
# ... and in a request, what a server may call it (no control character)
_PART_ASKED = re.compile(rf"^{_SERVER}[^\x00-\x1f\x7f]{{1,8192}}$")
_VERB = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def tool_server(name: str) -> str:
    """The server part of a tool's (prompt's, resource's) name:
    ``tool_server("github__create_issue") == "github"``.

    Server names are DNS labels, which cannot contain ``_``, so the first ``__`` is the
    boundary. Returns ``""`` for a name that is not a tool name. This is the model's
    ``toolServer`` function.
    """
    i = name.find("__")
    return name[:i] if i > 0 else ""


def is_dns_label(value: str) -> bool:
    return bool(_DNS_LABEL.match(value))


def check_dns_label(value: str, what: str) -> str:
    if not is_dns_label(value):
        raise InvalidName(
            f"{what} `{value}` is not a valid name: use 1-63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


def check_verb(value: str) -> str:
    if not _VERB.match(value):
        raise InvalidName(f"verb `{value}` is not valid: use lowercase letters, digits and '-'")
    return value


def check_object_name(value: str, kind: str | None = None, *, asked: bool = False) -> str:
    """Validate an object name as used in a binding or policy line (or, ``asked``, in a
    request: a prompt or resource may then be called anything but control characters)."""
    if kind in ("prompts", "resources"):
        what = "prompt" if kind == "prompts" else "resource"
        if not (_PART_ASKED if asked else _PART_NAME).match(value):
            raise InvalidName(
                f"{what} name `{value}` is not valid: expected `<server>__<{what}>`"
                + ("" if asked else " of letters, digits and . _ @ + : * / ? = & % # ~ -")
                + ("; a resource is named by its URI" if what == "resource" else "")
            )
        return value
    if kind == "tools":
        if not _TOOL_NAME.match(value):
            raise InvalidName(
                f"tool name `{value}` is not valid: expected `<server>__<tool>` with the "
                "tool part of letters, digits, '_', '.' or '-'"
            )
        return value
    if not _OBJECT_NAME.match(value):
        raise InvalidName(
            f"name `{value}` is not valid: use letters, digits and '.', '_', '@', '+', ':', "
            "'-' (no spaces, commas, quotes or brackets)"
        )
    return value


def _body(rx: re.Pattern[str]) -> str:
    return rx.pattern.removeprefix("^").removesuffix("$")


#: Every subject :meth:`Subject.parse` accepts, in one match (the same patterns).
_SUBJECT = re.compile(
    "|".join(
        f"{kind}:(?:{_body(rx)})"
        for kind, rx in (
            ("User", _USER_NAME),
            ("Group", _GROUP_NAME),
            ("McpToken", _SHA256_HEX),
            ("ServiceAccount", _DNS_LABEL),
        )
    )
)


def is_subject(text: str) -> bool:
    """Is ``text`` a well-formed subject? One match, no :class:`Subject` made: the hot
    path's check (when False, :meth:`Subject.parse` says what is wrong)."""
    return _SUBJECT.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Subject:
    """A parsed subject: ``User:alice``, ``Group:devs``, ``McpToken:<sha256-hex>`` or
    ``ServiceAccount:mcplocal`` (a machine identity; a DNS label)."""

    type: SubjectType
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Subject:
        kind, sep, name = text.partition(":")
        if not sep or not name:
            raise InvalidName(
                f"subject `{text}` is not valid: expected `User:<name>`, `Group:<name>`, "
                "`ServiceAccount:<name>` or `McpToken:<sha256>`"
            )
        if kind == "User":
            if not _USER_NAME.match(name):
                raise InvalidName(
                    f"user name `{name}` is not valid: use letters, digits and '.', '_', "
                    "'@', '+', '-'"
                )
            return cls("User", name)
        if kind == "Group":
            if not _GROUP_NAME.match(name):
                raise InvalidName(
                    f"group name `{name}` is not valid: use 1-63 lowercase letters, digits and '-'"
                )
            return cls("Group", name)
        if kind == "McpToken":
            if not _SHA256_HEX.match(name):
                raise InvalidName(
                    f"token subject `{text}` is not valid: expected `McpToken:` followed "
                    "by 64 lowercase hex digits (the token's SHA-256)"
                )
            return cls("McpToken", name)
        if kind == "ServiceAccount":
            if not _DNS_LABEL.match(name):
                raise InvalidName(
                    f"service account name `{name}` is not valid: use 1-63 lowercase letters, "
                    "digits and '-'"
                )
            return cls("ServiceAccount", name)
        raise InvalidName(
            f"subject type `{kind}` is unknown: expected `User`, `Group`, `ServiceAccount` "
            "or `McpToken`"
        )
