"""mcpd's service layer: every change to the configuration, whoever asks for it.

One module per resource kind, of keyword-only functions (``create_server(*, db, rt,
caller, spec)``, ``update_server(...)``, ``delete_server(...)``, and the reads). Each
change runs as one unit of work (:mod:`mcpd.services.work`): authorize and check the
creator ceiling -> write -> audit -> commit -> publish. The API's routers
(:mod:`mcpd.api`) are thin adapters over these; restore (:mod:`mcpd.services.restore`)
uses the same checks and the same unit of work.
"""

__all__ = [
    "backup",
    "common",
    "groups",
    "mcptokens",
    "policy",
    "projects",
    "rbac",
    "restore",
    "secrets",
    "servers",
    "users",
    "work",
]
