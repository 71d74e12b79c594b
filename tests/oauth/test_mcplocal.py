"""mcplocal with OAuth tokens (no browser: the flow's HTTP by httpx): a token is good only
at the resource it was issued for, static McpTokens keep working beside it, and a revoked
grant is refused at once."""

from __future__ import annotations

import time

import httpx

from tests.mcpd.test_instances import PASSWORD
from tests.oauth.conftest import DEV, OAuthStack
from tests.oauth.flow import Flow

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def post(url: str, bearer: str) -> httpx.Response:
    return httpx.post(
        url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {bearer}"}, timeout=30
    )


def access_for(s: OAuthStack, resource: str) -> tuple[str, str]:
    f = Flow(s.mcpd.base, resource)
    try:
        assert f.register().status_code == 201
        r = f.exchange(f.code(DEV, PASSWORD, "web"))
        assert r.status_code == 200, r.text
        return r.json()["access_token"], f.client_id
    finally:
        f.close()


def test_resource_binding_and_static_tokens_beside_oauth(oauth_stack: OAuthStack) -> None:
    s = oauth_stack
    local, demo = f"{s.mcplocal}/mcp", f"{s.mcpd.base}/api/v1/servers/demo/mcp"
    for_local, _ = access_for(s, local)
    for_mcpd, _ = access_for(s, demo)
    assert post(local, for_local).status_code == 200
    refused = post(local, for_mcpd)  # issued for mcpd's endpoint, not this mcplocal
    assert refused.status_code == 401
    assert "issued for another resource" in refused.headers["www-authenticate"]
    assert post(f"{demo}?project=web", for_local).status_code == 401  # and the other way
    assert post(f"{demo}?project=web", for_mcpd).status_code == 200
    static = s.mcpd.ok(
        "POST",
        "/mcptokens",
        json={"name": "ci", "project": "web", "bindings": ["role:run,resource:servers"]},
    )["token"]
    assert post(local, static).status_code == 200  # static McpTokens keep working


def test_revoking_the_grants_mcptoken_is_enforced_at_once(oauth_stack: OAuthStack) -> None:
    s = oauth_stack
    local = f"{s.mcplocal}/mcp"
    access, _ = access_for(s, local)
    assert post(local, access).status_code == 200  # introspected, and now remembered
    [grant] = s.mcpd.ok("GET", "/oauthgrants", bearer=s.dev_session)["items"]
    s.mcpd.ok("POST", f"/mcptokens/{grant['name']}/revoke")  # an admin, as for any token
    deadline = time.monotonic() + 1.0
    while post(local, access).status_code != 401:
        assert time.monotonic() < deadline, "a revoked grant still works after 1 s"
        time.sleep(0.02)
    [after] = s.mcpd.ok("GET", "/oauthgrants", bearer=s.dev_session)["items"]
    assert after["revokedAt"] is not None
    assert s.mcpd.call("DELETE", f"/oauthgrants/{grant['name']}").status_code == 404  # not yours
