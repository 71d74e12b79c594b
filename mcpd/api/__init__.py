"""mcpd's REST API: one FastAPI router per resource, thin adapters over the services.

Every route under ``/api/v1`` is guarded by :func:`mcpd.api.deps.guard` from its entry
in :mod:`mcpd.api.route_table`; a route parses its body (:mod:`mcpd.schemas`), calls a
service function (:mod:`mcpd.services`) and shapes the answer.
"""

__all__ = [
    "auditevents",
    "auth",
    "backup",
    "common",
    "deps",
    "groups",
    "instances",
    "mcptokens",
    "policy",
    "projects",
    "rbac",
    "route_table",
    "secrets",
    "servers",
    "users",
]
