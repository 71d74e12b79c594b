"""``@modelcontextprotocol/server-everything`` (npm) as a real upstream - over Streamable HTTP
and over stdio - through mcpd's per-server endpoint and through mcplocal, with the SDK's
client answering what the server asks of it:

* sampling (``trigger-sampling-request``) and elicitation (``trigger-elicitation-request``):
  the server's request reaches the caller, the caller's answer reaches the server;
* logging: ``logging/setLevel``, then the server's log messages arrive;
* completion of a prompt argument and of a resource template variable;
* subscriptions: ``resources/subscribe``, then ``notifications/resources/updated``;
* resource templates listed, a templated URI read; a prompt got;
* two callers at once: a sampling request reaches only the caller whose call made it
  (over HTTP both are answered; on stdio, where the child's request does not say which
  call it is for, one asked while both calls are in flight is refused, saying so, and from
  then on the tool's calls run one at a time, so both are answered).

One stack (mcpd + mcplocal + the HTTP server-everything) for the module. Each (upstream
kind, path) has a server of its own: the server's toggles and subscriptions are per
upstream session, and mcpd holds one session per server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from mcplocal.names import exposed_name
from tests.mcpd.test_instances import ROOT, text
from tests.mcplocal.conftest import Stack, open_stack
from tests.mcplocal.test_journey import token
from tests.servers.launch import free_port, stop

NODE = ROOT / ".tools/node22/node_modules/node/bin/node"
EVERYTHING = ROOT / ".tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
# as a stdio server: its npm bin (``#!/usr/bin/env node``; the sandbox shows a command's
# install and its interpreter's), the node on PATH Node 22
BIN = ROOT / ".tools/npm/node_modules/.bin/mcp-server-everything"
STDIO = {"command": str(BIN), "args": ["stdio"], "env": {"PATH": f"{NODE.parent}:/usr/bin:/bin"}}
KINDS = ("http", "stdio")
PATHS = ("mcpd", "mcplocal")
TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
ACK = "Received Subscribe Resource request for URI: "  # the server's log message


@dataclass
class World:
    stack: Stack
    bearers: dict[str, str]  # kind -> an McpToken of the project of that kind's server

    def target(self, kind: str, path: str) -> tuple[str, str, str]:
        """(url, bearer, name prefix) of the server for ``kind`` reached through ``path``."""
        server = f"ev-{kind}-{path}"
        if path == "mcpd":
            m = self.stack.mcpd
            return f"{m.base}/api/v1/servers/{server}/mcp", m.admin, ""
        return f"{self.stack.mcplocal}/mcp", self.bearers[kind], f"{server}__"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    assert NODE.exists() and EVERYTHING.exists(), "run scripts/ensure-node-tools.sh"
    tmp = tmp_path_factory.mktemp("everything")
    port = free_port()
    log = (tmp / "everything-http.log").open("wb")
    up = subprocess.Popen(
        [str(NODE), str(EVERYTHING), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        try:
            with open_stack(tmp) as stack:
                m = stack.mcpd
                http = {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}}
                bearers = {}
                for kind, spec in (
                    ("http", http),
                    ("stdio", {"transport": "stdio", "stdio": STDIO}),
                ):
                    for path in PATHS:
                        m.server(f"ev-{kind}-{path}", spec)
                    # a project of one server for mcplocal: the servers' templates are alike
                    # (a templated URI is read from the first server whose template fits)
                    m.ok(
                        "POST", "/projects", json={"name": kind, "servers": [f"ev-{kind}-mcplocal"]}
                    )
                    bearers[kind] = token(stack, f"ev-{kind}", kind, "role:run,resource:servers")
                yield World(stack, bearers)
        finally:
            stop(up)
            log.close()


@dataclass
class Seen:
    """What one caller's session was asked and told."""

    sampled: list[str] = field(default_factory=list)  # the prompts it was asked to sample
    elicited: list[str] = field(default_factory=list)
    logged: list[Any] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # URIs of resources/updated


@asynccontextmanager
async def session(url: str, bearer: str, answer: str, seen: Seen) -> AsyncIterator[ClientSession]:
    """A session declaring sampling and elicitation: it samples ``answer``, and accepts an
    elicitation with the name ``answer``."""

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
        asked = params.messages[0].content
        seen.sampled.append(getattr(asked, "text", repr(asked)))
        await anyio.sleep(0.3)  # (two callers: both requests are in flight at once)
        content = types.TextContent(type="text", text=f"sampled by {answer}")
        return types.CreateMessageResult(role="assistant", content=content, model="test-model")

    async def elicit(context: Any, params: types.ElicitRequestParams) -> Any:
        seen.elicited.append(params.message)
        return types.ElicitResult(action="accept", content={"name": answer, "check": True})

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        seen.logged.append(params.data)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.updated.append(str(message.params.uri))

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(
            read,
            write,
            sampling_callback=sample,
            elicitation_callback=elicit,
            logging_callback=on_log,
            message_handler=on_message,
        ) as s,
    ):
        await s.initialize()
        yield s


async def until(check: Any, seconds: float = 15) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.05)


CASES = [pytest.param(k, p, id=f"{k}-{p}") for k in KINDS for p in PATHS]


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_the_server_asks_and_the_caller_answers(world: World, kind: str, path: str) -> None:
    url, bearer, pre = world.target(kind, path)
    seen = Seen()

    async def flow() -> tuple[str, str]:
        async with session(url, bearer, "ada", seen) as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {f"{pre}trigger-sampling-request", f"{pre}trigger-elicitation-request"} <= tools
            sampled = await s.call_tool(f"{pre}trigger-sampling-request", {"prompt": "hello"})
            elicited = await s.call_tool(f"{pre}trigger-elicitation-request", {})
            assert not sampled.is_error and not elicited.is_error, (sampled, elicited)
            return text(sampled), text(elicited)

    sampled, elicited = anyio.run(flow)
    assert seen.sampled == ["Resource trigger-sampling-request context: hello"]
    assert "sampled by ada" in sampled and "test-model" in sampled
    assert seen.elicited == ["Please provide inputs for the following fields:"]
    assert "User provided the requested information" in elicited
    assert "- Name: ada" in elicited and "- Agreed to terms: true" in elicited


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_logging_completion_templates_prompts_subscriptions(
    world: World, kind: str, path: str
) -> None:
    url, bearer, pre = world.target(kind, path)
    seen = Seen()
    uri = "demo://resource/dynamic/text/3"
    quiet = "demo://resource/dynamic/text/4"

    async def flow() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with session(url, bearer, "ada", seen) as s:
            templates = (await s.list_resource_templates()).resource_templates
            out["templates"] = {t.uri_template: t.name for t in templates}
            read = (await s.read_resource(uri)).contents
            out["read"] = [getattr(c, "text", None) for c in read]
            prompt = await s.get_prompt(f"{pre}args-prompt", {"city": "Paris"})
            out["prompt"] = text(types.CallToolResult(content=[prompt.messages[0].content]))
            ref = types.PromptReference(type="ref/prompt", name=f"{pre}completable-prompt")
            done = await s.complete(ref, {"name": "department", "value": "Eng"})
            out["department"] = done.completion.values
            done = await s.complete(
                ref, {"name": "name", "value": "B"}, context_arguments={"department": "Engineering"}
            )
            out["member"] = done.completion.values
            tref = types.ResourceTemplateReference(type="ref/resource", uri=TEMPLATE)
            done = await s.complete(tref, {"name": "resourceId", "value": "42"})
            out["resource_id"] = done.completion.values

            # each subscribe is acknowledged with an info-level log message, sent only at a
            # level at or below info: at "error" the first one is not, at "debug" the second is
            # (the log's messages come in order: once the second is here, the first is not)
            levels: list[tuple[types.LoggingLevel, str]] = [("error", quiet), ("debug", uri)]
            for level, subscribed in levels:
                set_level = types.SetLevelRequestParams(level=level)
                await s.send_request(types.SetLevelRequest(params=set_level), types.EmptyResult)
                sub = types.SubscribeRequestParams(uri=subscribed)
                await s.send_request(types.SubscribeRequest(params=sub), types.EmptyResult)
            await until(lambda: any(str(d).startswith(ACK + uri) for d in seen.logged))
            out["acks"] = [str(d) for d in seen.logged if str(d).startswith(ACK)]
            # the server's updates start with this tool (per upstream session): one at once
            toggled = text(await s.call_tool(f"{pre}toggle-subscriber-updates", {}))
            out["toggled"] = toggled
            await until(lambda: {uri, quiet} <= set(seen.updated))
            if toggled.startswith("Started"):  # back off again (an interval of 5 s)
                await s.call_tool(f"{pre}toggle-subscriber-updates", {})
        return out

    out = anyio.run(flow)
    # through mcplocal named like tools (a name with spaces: cut and hashed, mcplocal/names.py)
    name = exposed_name(pre[:-2], "Dynamic Text Resource") if pre else "Dynamic Text Resource"
    assert out["templates"].get(TEMPLATE) == name, out["templates"]
    assert len(out["read"]) == 1 and out["read"][0].startswith("Resource 3: This is a plaintext")
    assert out["prompt"] == "What's weather in Paris?"
    assert out["department"] == ["Engineering"]
    assert out["member"] == ["Bob"]
    assert out["resource_id"] == ["42"]
    assert out["toggled"].startswith("Started simulated resource updated notifications")
    assert len(out["acks"]) == 1 and out["acks"][0].startswith(ACK + uri), out["acks"]
    assert set(seen.updated) == {uri, quiet}


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_two_callers_each_sampled_on_their_own(world: World, kind: str, path: str) -> None:
    url, bearer, pre = world.target(kind, path)
    seen = {who: Seen() for who in ("alice", "bob")}
    got: dict[str, types.CallToolResult] = {}

    async def one(who: str) -> None:
        async with session(url, bearer, who, seen[who]) as s:
            got[who] = await s.call_tool(f"{pre}trigger-sampling-request", {"prompt": who})

    async def flow() -> None:
        async with anyio.create_task_group() as tg:
            for who in seen:
                tg.start_soon(one, who)

    async def listed() -> None:
        # server-everything registers its sampling tool only once a session that declares
        # sampling has sent `initialized` (its oninitialized): a call made at once can come
        # first. Wait for the listing to show it, as a client following list_changed would.
        async with session(url, bearer, "warm-up", Seen()) as s:
            with anyio.fail_after(20):
                while f"{pre}trigger-sampling-request" not in {
                    t.name for t in (await s.list_tools()).tools
                }:
                    await anyio.sleep(0.2)

    anyio.run(listed)
    for round in (1, 2):
        for who in seen:
            seen[who].sampled.clear()
        anyio.run(flow)
        for who, other in (("alice", "bob"), ("bob", "alice")):
            assert f"sampled by {other}" not in text(got[who])
            if kind == "stdio" and round == 1 and not seen[who].sampled:
                # on stdio the child's request says nothing of which call it is for: with
                # both in flight it goes to nobody, refused saying so (upstream/relay/pipe.py);
                # the tool is then known to ask, and its calls run alone (round 2)
                assert got[who].is_error and "cannot tell which" in text(got[who]), got[who]
                continue
            assert seen[who].sampled == [f"Resource trigger-sampling-request context: {who}"]
            assert not got[who].is_error, got[who]
            assert f"sampled by {who}" in text(got[who])
