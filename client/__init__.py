"""The typed REST client for mcpd's API, used by the CLI and mcplocal.

A foundation: it imports none of the buildings (mcpd, mcplocal, cli) and speaks only the
wire format (JSON bodies, problem+json errors, ``Authorization: Bearer``), over one HTTP
library (httpx2).

* :mod:`client.sync`: :class:`McpdClient`, the sync face (the CLI's);
* :mod:`client.aio`: :class:`AsyncMcpdClient`, the async face (mcplocal's);
* :mod:`client.auth`: :class:`BearerAuth`, credentials as an auth flow: add the bearer, and
  on a 401 obtain a fresh one once (log in again, or a refresh callback) and retry once;
* :mod:`client.errors`: the error tree (ApiError by status, Unreachable);
* :mod:`client.login`: the user's saved login, as ``mcpctl login`` wrote it;
* :mod:`client.wire`: the API prefix, resource kinds, decoding an answer.
"""

from client.aio import AUDIT_EVENTS, MY_CALLS, MY_POLICY, POLICY_WATCH, AsyncMcpdClient
from client.auth import BearerAuth
from client.errors import (
    ApiError,
    ClientError,
    Conflict,
    Denied,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Unreachable,
)
from client.login import DEFAULT_SERVER, LoginFile, SavedLogin, config_path, saved_login
from client.sync import McpdClient
from client.wire import API, KINDS, collection

__all__ = [
    "API",
    "AUDIT_EVENTS",
    "DEFAULT_SERVER",
    "KINDS",
    "MY_CALLS",
    "MY_POLICY",
    "POLICY_WATCH",
    "ApiError",
    "AsyncMcpdClient",
    "BearerAuth",
    "ClientError",
    "Conflict",
    "Denied",
    "InvalidInput",
    "LoginFile",
    "McpdClient",
    "NotAuthenticated",
    "NotFound",
    "SavedLogin",
    "Unreachable",
    "collection",
    "config_path",
    "saved_login",
]
