"""Small stdio MCP servers that misbehave on purpose, one per ``--kind``.

- ``demo``: tools ``add``, ``echo``, ``sleep`` (``cancelled`` says how many sleeps were
  cancelled), ``progress`` (reports 3 steps), ``env`` (its environment's names), ``crash``
  (exits at once, mid-call), ``shout`` (N lines to stderr), ``sample`` (asks its client
  for a sampling/createMessage and says what it answered), ``elicit`` (asks its client for
  a name with elicitation/create, says what it answered); prompts ``greet`` and ``plan``,
  resources ``demo://notes`` and ``demo://secret`` and a template ``demo://items/{id}``;
- ``flood``: ``demo``, and a thread writing stderr as fast as it can;
- ``hang``: reads stdin and never answers, not even ``initialize``;
- ``exit``: prints a complaint to stderr and exits with status 3;
- ``grandchild``: ``demo``, after starting a grandchild (``sleep``) in its process group
  that ignores SIGTERM, writing its pid to ``--pidfile``.

Run: ``python -m tests.servers.stdio_server --kind demo``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

CANCELLED: list[float] = []


class Name(BaseModel):
    name: str


def demo_server() -> MCPServer:
    server = MCPServer("stdio-demo", version="0.0.1")

    @server.tool(description="Add two integers")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Echo the text back")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Sleep, then say so")
    async def sleep(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            CANCELLED.append(seconds)  # the caller's cancellation reached this server
            raise
        return f"slept {seconds}s"

    @server.tool(description="How many sleeps were cancelled so far")
    def cancelled() -> int:
        return len(CANCELLED)

    @server.tool(description="Ask the client for a sampling/createMessage, say its answer")
    async def sample(prompt: str, ctx: Context) -> str:
        message = types.SamplingMessage(
            role="user", content=types.TextContent(type="text", text=prompt)
        )
        try:
            result = await ctx.session.create_message([message], max_tokens=10)
        except Exception as exc:
            return f"no sampling: {exc}"
        content = result.content
        return f"sampled: {content.text if isinstance(content, types.TextContent) else '?'}"

    @server.tool(description="Ask the client for a name (elicitation/create), say its answer")
    async def elicit(question: str, ctx: Context) -> str:
        try:
            result = await ctx.elicit(question, schema=Name)
        except Exception as exc:
            return f"no elicitation: {exc}"
        return f"elicited: {result.action} {result.data.name if result.data else '-'}"

    @server.prompt(description="Greet someone")
    def greet(name: str) -> str:
        return f"Say hello to {name}"

    @server.prompt(description="A plan")
    def plan() -> str:
        return "the plan"

    @server.resource("demo://notes", description="Notes")
    def notes() -> str:
        return "some notes"

    @server.resource("demo://secret", description="A secret")
    def secret() -> str:
        return "the secret"

    @server.resource("demo://items/{id}", description="An item")
    def item(id: str) -> str:
        return f"item {id}"

    @server.tool(description="Report progress three times")
    async def progress(ctx: Context) -> str:
        for step in range(1, 4):
            await ctx.report_progress(step, 3, f"step {step}")
            await anyio.sleep(0.01)
        return "done"

    @server.tool(description="The names of this process's environment variables")
    def env() -> str:
        return ",".join(sorted(os.environ))

    @server.tool(description="Exit at once")
    def crash() -> str:
        sys.stderr.write("crashing on purpose\n")
        sys.stderr.flush()
        os._exit(7)

    @server.tool(description="Write lines to stderr")
    def shout(lines: int) -> str:
        for i in range(lines):
            sys.stderr.write(f"shout {i}\n")
        sys.stderr.flush()
        return f"{lines} lines"

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="demo")
    parser.add_argument("--pidfile", default="")
    args = parser.parse_args()
    sys.stderr.write(f"{args.kind} server starting\n")
    sys.stderr.flush()
    if args.kind == "hang":
        for _ in sys.stdin:
            pass
        time.sleep(3600)
        return
    if args.kind == "exit":
        sys.stderr.write("cannot start: no configuration\n")
        sys.exit(3)
    if args.kind == "flood":

        def flood() -> None:
            line = "x" * 200 + "\n"
            while True:
                sys.stderr.write(line)

        threading.Thread(target=flood, daemon=True).start()
    if args.kind == "grandchild":
        child = subprocess.Popen(
            ["sh", "-c", "trap '' TERM; sleep 1000 & wait"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
        )
        if args.pidfile:
            with open(args.pidfile, "w") as f:
                f.write(str(child.pid))
    demo_server().run("stdio")


if __name__ == "__main__":
    main()
