"""The one table from every API route to the (kind, action) the shared enforcer checks.

Every route under ``/api/v1`` must appear here (a test and start-up both check).
``Guard(kind, action, project=...)`` says how the request's project is found:

* ``"none"``        the request is in no project ("")
* ``"path:PARAM"``  the path parameter PARAM names the project
* ``"query"``       ``?project=P`` if given, else no project
* ``"body"``        the JSON body's ``project`` field
* ``"token"``       the project of the McpToken named by the ``name`` path parameter
* ``"caller"``      ``?project=P`` if given, else an McpToken caller's own project

The object's name is the ``name`` path parameter when the route has one.
``SELF`` marks routes any authenticated caller may use on itself (me, logout,
introspect, can-i about oneself); ``PUBLIC`` routes need no credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Guard:
    kind: str
    action: str
    project: str = "none"


SELF: Final = "self"
PUBLIC: Final = "public"

V1 = "/api/v1"

ROUTES: Final[dict[tuple[str, str], Guard | str]] = {
    # identities
    ("POST", f"{V1}/auth/login"): PUBLIC,
    ("POST", f"{V1}/auth/logout"): SELF,
    ("GET", f"{V1}/auth/me"): SELF,
    ("POST", f"{V1}/auth/can-i"): SELF,  # asking for another subject needs `impersonate`
    ("GET", f"{V1}/auth/can-i/list"): SELF,  # another subject's list needs `impersonate`
    ("GET", f"{V1}/auth/who-can"): SELF,  # needs `who-can` on the object asked about
    ("GET", f"{V1}/mcptokens/introspect"): PUBLIC,  # the bearer is the token asked about
    # users
    ("GET", f"{V1}/users"): Guard("users", "list"),
    ("POST", f"{V1}/users"): Guard("users", "create"),
    ("GET", f"{V1}/users/{{name}}"): Guard("users", "get"),
    ("PUT", f"{V1}/users/{{name}}"): Guard("users", "update"),
    ("DELETE", f"{V1}/users/{{name}}"): Guard("users", "delete"),
    # groups
    ("GET", f"{V1}/groups"): Guard("groups", "list"),
    ("POST", f"{V1}/groups"): Guard("groups", "create"),
    ("GET", f"{V1}/groups/{{name}}"): Guard("groups", "get"),
    ("PUT", f"{V1}/groups/{{name}}"): Guard("groups", "update"),
    ("DELETE", f"{V1}/groups/{{name}}"): Guard("groups", "delete"),
    # projects: a project is in itself
    ("GET", f"{V1}/projects"): Guard("projects", "list"),
    ("POST", f"{V1}/projects"): Guard("projects", "create"),
    ("GET", f"{V1}/projects/{{name}}"): Guard("projects", "get", "path:name"),
    ("PUT", f"{V1}/projects/{{name}}"): Guard("projects", "update", "path:name"),
    ("DELETE", f"{V1}/projects/{{name}}"): Guard("projects", "delete", "path:name"),
    ("GET", f"{V1}/projects/{{project}}/servers"): Guard("servers", "list", "path:project"),
    # servers
    ("GET", f"{V1}/servers"): Guard("servers", "list"),
    ("POST", f"{V1}/servers"): Guard("servers", "create"),
    ("GET", f"{V1}/servers/{{name}}"): Guard("servers", "get"),
    ("PUT", f"{V1}/servers/{{name}}"): Guard("servers", "update"),
    ("DELETE", f"{V1}/servers/{{name}}"): Guard("servers", "delete"),
    # a server's MCP endpoint, its instance and its logs
    ("GET", f"{V1}/servers/{{name}}/mcp"): Guard("servers", "run", "caller"),
    ("POST", f"{V1}/servers/{{name}}/mcp"): Guard("servers", "run", "caller"),
    ("DELETE", f"{V1}/servers/{{name}}/mcp"): Guard("servers", "run", "caller"),
    ("GET", f"{V1}/servers/{{name}}/logs"): Guard("servers", "logs"),
    ("GET", f"{V1}/instances"): Guard("instances", "list"),
    ("GET", f"{V1}/instances/{{name}}"): Guard("instances", "get"),
    # secrets
    ("GET", f"{V1}/secrets"): Guard("secrets", "list"),
    ("POST", f"{V1}/secrets"): Guard("secrets", "create"),
    ("GET", f"{V1}/secrets/{{name}}"): Guard("secrets", "get"),
    ("PUT", f"{V1}/secrets/{{name}}"): Guard("secrets", "update"),
    ("DELETE", f"{V1}/secrets/{{name}}"): Guard("secrets", "delete"),
    # rbac definitions
    ("GET", f"{V1}/rbac"): Guard("rbac", "list"),
    ("POST", f"{V1}/rbac"): Guard("rbac", "create"),
    ("GET", f"{V1}/rbac/{{name}}"): Guard("rbac", "get"),
    ("PUT", f"{V1}/rbac/{{name}}"): Guard("rbac", "update"),
    ("DELETE", f"{V1}/rbac/{{name}}"): Guard("rbac", "delete"),
    # mcp tokens: each lives in one project
    ("GET", f"{V1}/mcptokens"): Guard("mcptokens", "list", "query"),
    ("POST", f"{V1}/mcptokens"): Guard("mcptokens", "create", "body"),
    ("GET", f"{V1}/mcptokens/{{name}}"): Guard("mcptokens", "get", "token"),
    ("DELETE", f"{V1}/mcptokens/{{name}}"): Guard("mcptokens", "delete", "token"),
    ("POST", f"{V1}/mcptokens/{{name}}/revoke"): Guard("mcptokens", "update", "token"),
    # service accounts: minting or revoking one of its tokens changes the account
    ("GET", f"{V1}/serviceaccounts"): Guard("serviceaccounts", "list"),
    ("POST", f"{V1}/serviceaccounts"): Guard("serviceaccounts", "create"),
    ("GET", f"{V1}/serviceaccounts/{{name}}"): Guard("serviceaccounts", "get"),
    ("PUT", f"{V1}/serviceaccounts/{{name}}"): Guard("serviceaccounts", "update"),
    ("DELETE", f"{V1}/serviceaccounts/{{name}}"): Guard("serviceaccounts", "delete"),
    ("POST", f"{V1}/serviceaccounts/{{name}}/tokens"): Guard("serviceaccounts", "update"),
    ("POST", f"{V1}/serviceaccounts/{{name}}/tokens/{{prefix}}/revoke"): Guard(
        "serviceaccounts", "update"
    ),
    # a user's own OAuth grants (each is an McpToken of that user: mcptokens above too)
    ("GET", f"{V1}/oauthgrants"): SELF,
    ("DELETE", f"{V1}/oauthgrants/{{name}}"): SELF,
    # audit
    ("GET", f"{V1}/auditevents"): Guard("auditevents", "audit"),
    # a proxy (mcplocal) follows the policy and reports the tool calls it made
    ("POST", f"{V1}/auditevents"): Guard("*", "proxy"),
    ("GET", f"{V1}/policy/watch"): Guard("*", "proxy"),
    # mcplocal stdio, with a user's own login: that user's rules, and its own calls
    ("GET", f"{V1}/auth/me/policy"): SELF,
    ("POST", f"{V1}/auth/me/calls"): SELF,
    # backup and restore: operations on the whole configuration
    ("GET", f"{V1}/backup"): Guard("*", "backup"),
    ("POST", f"{V1}/restore"): Guard("*", "restore"),
    # apply (mcpctl apply): every document is authorized as the API would (services.restore)
    ("POST", f"{V1}/apply"): SELF,
}


def guard_for(method: str, path_format: str) -> Guard | str | None:
    return ROUTES.get((method, path_format))
