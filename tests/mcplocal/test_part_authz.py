"""Prompts and resources authorized one by one through ``mcplocal serve``, like tools.

A token bound to one prompt and one resource of a server (no line on the server) sees and
uses exactly those; every other prompt and resource of that server is answered like one
that does not exist, the refusals audited (reported by mcplocal, recorded by mcpd). The
upstream is the real stdio demo server, behind mcpd.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types

from tests.mcpd.test_instances import mcp_session, stdio_spec
from tests.mcpd.test_part_authz import mcp_error
from tests.mcplocal.conftest import Stack
from tests.mcplocal.test_journey import token


def test_a_token_uses_only_the_prompts_and_resources_it_is_bound_to(stack: Stack) -> None:
    m = stack.mcpd
    m.server("demo", stdio_spec("demo"))
    m.ok("POST", "/projects", json={"name": "web", "servers": ["demo"]})
    narrow = token(
        stack,
        "narrow",
        "web",
        "role:run,resource:prompts,name:demo__greet",
        "role:run,resource:resources,name:demo__demo://notes",
    )
    wide = token(stack, "wide", "web", "role:run,resource:servers,name:demo")

    async def flow(bearer: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with mcp_session(f"{stack.mcplocal}/mcp", bearer) as s:
            out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
            out["prompts"] = sorted(p.name for p in (await s.list_prompts()).prompts)
            out["resources"] = sorted(str(r.uri) for r in (await s.list_resources()).resources)
            greeted = await s.get_prompt("demo__greet", {"name": "ada"})
            out["greet"] = getattr(greeted.messages[0].content, "text", "")
            notes = await s.read_resource("demo://notes")
            out["notes"] = getattr(notes.contents[0], "text", "")
            out["plan"] = await mcp_error(s.get_prompt("demo__plan"))
            out["nope"] = await mcp_error(s.get_prompt("demo__nope"))
            out["secret"] = await mcp_error(s.read_resource("demo://secret"))
            out["missing"] = await mcp_error(s.read_resource("demo://missing"))
            ref = types.PromptReference(type="ref/prompt", name="demo__plan")
            out["complete"] = await mcp_error(s.complete(ref, {"name": "x", "value": "y"}))
        return out

    got = anyio.run(flow, narrow)
    assert got["tools"] == []  # no tool is bound
    assert got["prompts"] == ["demo__greet"]
    assert got["resources"] == ["demo://notes"]
    assert got["greet"] == "Say hello to ada" and got["notes"] == "some notes"
    # forbidden == unknown: nothing leaks
    assert got["plan"] == (types.INVALID_PARAMS, "Unknown prompt: demo__plan")
    assert got["nope"] == (types.INVALID_PARAMS, "Unknown prompt: demo__nope")
    assert got["complete"] == (types.INVALID_PARAMS, "Unknown prompt: demo__plan")
    assert got["secret"] == (types.INVALID_PARAMS, "Unknown resource: demo://secret")
    assert got["missing"] == (types.INVALID_PARAMS, "Unknown resource: demo://missing")

    # a line on the server covers every prompt and resource of it
    everything = anyio.run(flow, wide)
    assert everything["prompts"] == ["demo__greet", "demo__plan"]
    assert everything["resources"] == ["demo://notes", "demo://secret"]
    assert everything["plan"] == (0, "answered") and everything["secret"] == (0, "answered")

    def refused() -> set[tuple[str, str, str | None]]:
        items = m.ok("GET", "/auditevents", params={"outcome": "deny"})["items"]
        return {
            (e["kind"], e["name"], e["tokenName"])
            for e in items
            if e["kind"] in ("prompts", "resources")
        }

    want = {
        ("prompts", "demo__plan", "narrow"),
        ("resources", "demo__demo://secret", "narrow"),
    }
    for _ in range(100):  # (mcplocal reports them in the background)
        if refused() >= want:
            break
        anyio.run(anyio.sleep, 0.1)
    assert refused() == want
