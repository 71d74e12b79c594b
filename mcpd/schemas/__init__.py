"""mcpd's request and response bodies, one module per resource kind (pydantic, camelCase).

The routers (:mod:`mcpd.api`) parse requests into these and shape answers from them; the
services (:mod:`mcpd.services`) take the parsed bodies; manifests (:mod:`mcpd.manifests`)
check a document's ``spec`` with the same create bodies, so a manifest accepts exactly
what the API accepts.
"""

__all__ = [
    "auditevents",
    "auth",
    "backup",
    "common",
    "groups",
    "mcptokens",
    "projects",
    "rbac",
    "secrets",
    "servers",
    "users",
]
