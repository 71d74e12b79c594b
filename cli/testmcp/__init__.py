"""``mcpctl test mcp URL``: check any Streamable HTTP MCP endpoint, step by step.

The steps run in order, each timed and each given ``--timeout`` seconds:

- ``http``: a raw POST of ``initialize`` with no credentials: is anything MCP-shaped there?
- ``auth``: the server's challenge (status, ``WWW-Authenticate``, ``resource_metadata``)
  and, with ``--token``, whether the token passes it;
- ``initialize``: through the MCP SDK: protocol version, server name and version, capabilities;
- ``tools/list``: every tool's name and input schema checked against the spec, on the raw
  result (the SDK's typed result rejects a bad schema as a whole, without naming the tool);
- ``tools/call``: only with ``--call TOOL [--args JSON]``; raw as well, because the SDK's
  ``call_tool`` first re-lists the tools (through that strict parser) and so also times that.

A failure in one of the first three steps stops the run. The token travels only as
``Authorization: Bearer`` and is masked in everything printed.

The MCP SDK and httpx2 are imported inside the functions that use them: importing the SDK
takes about half a second, which every other ``mcpctl`` command would otherwise pay.

The package, one module per part of a run: :mod:`~cli.testmcp.report` (the steps and the
report they add to), :mod:`~cli.testmcp.probe` (``http`` and ``auth``, raw),
:mod:`~cli.testmcp.schema` (the ``tools/list`` checks), :mod:`~cli.testmcp.session`
(``initialize``, ``tools/list``, ``tools/call`` through the SDK),
:mod:`~cli.testmcp.render` (text or JSON) and :mod:`~cli.testmcp.command` (the command).
"""

from cli.testmcp.command import app, run_checks
from cli.testmcp.probe import connect_reason
from cli.testmcp.render import render_json, render_text
from cli.testmcp.report import Report, Step
from cli.testmcp.schema import check_tools

__all__ = [
    "Report",
    "Step",
    "app",
    "check_tools",
    "connect_reason",
    "render_json",
    "render_text",
    "run_checks",
]
