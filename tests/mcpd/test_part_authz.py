"""Prompts and resources authorized one by one through mcpd's per-server endpoint, like tools.

``run`` on ``prompts/<server>__<prompt>`` and ``resources/<server>__<uri>``: a line on the
server covers them all, a deny line on one hides it from its listing and answers it exactly
like one that does not exist (the MCP SDK server's own error), the refusal audited. The
upstream is the real stdio demo server (tests/servers/stdio_server.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tests.mcpd.test_instances import (
    ROOT,
    mcp_session,
    mcp_url,
    run,
    serve_mcpd,
    settings_with_policy,
    stdio_spec,
)

BOB = "bob@example.com"
POLICY = (
    f"p, User:{BOB}, *, prompts, demo__plan, role:run, deny",
    f"p, User:{BOB}, *, resources, demo__demo://secret, role:run, deny",
    f"p, User:{BOB}, *, resources, demo__demo://items/7, role:run, deny",
)


async def mcp_error(call: Any) -> tuple[int, str]:
    try:
        await call
    except MCPError as exc:
        return exc.code, exc.message
    return 0, "answered"


def test_a_denied_prompt_or_resource_is_answered_like_one_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with serve_mcpd(settings_with_policy(tmp_path, *POLICY)) as m:
        m.server("demo", stdio_spec("demo"))
        bob = m.login(BOB, "role:run,resource:servers,name:demo")

        async def flow(bearer: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with mcp_session(mcp_url(m, "demo"), bearer) as s:
                out["prompts"] = sorted(p.name for p in (await s.list_prompts()).prompts)
                out["resources"] = sorted(str(r.uri) for r in (await s.list_resources()).resources)
                got = await s.get_prompt("greet", {"name": "ada"})
                out["greet"] = got.messages[0].content
                out["plan"] = await mcp_error(s.get_prompt("plan"))
                out["nope"] = await mcp_error(s.get_prompt("nope"))
                out["secret"] = await mcp_error(s.read_resource("demo://secret"))
                out["missing"] = await mcp_error(s.read_resource("demo://missing"))
                out["item7"] = await mcp_error(s.read_resource("demo://items/7"))
                item = await s.read_resource("demo://items/8")
                out["item8"] = item.contents[0]
                with warnings.catch_warnings():  # (removed only from protocol 2026-07-28)
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    out["subscribe"] = await mcp_error(s.subscribe_resource("demo://secret"))
                ref = types.PromptReference(type="ref/prompt", name="plan")
                out["complete"] = await mcp_error(s.complete(ref, {"name": "value", "value": "x"}))
            return out

        got = run(lambda: flow(bob))
        assert got["prompts"] == ["greet"]
        assert got["resources"] == ["demo://notes"]
        assert getattr(got["greet"], "text", "") == "Say hello to ada"
        # a denied prompt: the error the SDK's server gives for an unknown one
        assert got["plan"] == (types.INVALID_PARAMS, "Unknown prompt: plan")
        assert got["nope"] == (types.INVALID_PARAMS, "Unknown prompt: nope")
        assert got["complete"] == (types.INVALID_PARAMS, "Unknown prompt: plan")
        # a denied resource, listed or templated, like one the server does not have
        assert got["secret"] == (types.INVALID_PARAMS, "Unknown resource: demo://secret")
        assert got["missing"] == (types.INVALID_PARAMS, "Unknown resource: demo://missing")
        assert got["item7"] == (types.INVALID_PARAMS, "Unknown resource: demo://items/7")
        assert got["subscribe"] == (types.INVALID_PARAMS, "Unknown resource: demo://secret")
        assert getattr(got["item8"], "text", "") == "item 8"

        # the admin (no deny lines) sees and uses everything
        admin = run(lambda: flow(m.admin))
        assert admin["prompts"] == ["greet", "plan"]
        assert admin["resources"] == ["demo://notes", "demo://secret"]
        assert admin["plan"] == (0, "answered") and admin["secret"] == (0, "answered")

        denies = m.ok("GET", "/auditevents", params={"outcome": "deny"})["items"]
        mine = [e for e in denies if e["kind"] in ("prompts", "resources")]
        assert {e["subject"] for e in mine} == {BOB} and {e["action"] for e in mine} == {"run"}
        refused = {(e["kind"], e["name"], e["detail"]["method"]) for e in mine}
        assert refused == {
            ("prompts", "demo__plan", "prompts/get"),
            ("prompts", "demo__plan", "completion/complete"),
            ("resources", "demo__demo://secret", "resources/read"),
            ("resources", "demo__demo://items/7", "resources/read"),
            ("resources", "demo__demo://secret", "resources/subscribe"),
        }
        assert all("deny" in e["detail"]["reason"] for e in mine)
