"""``mcpctl``, the command line (Typer): a building that reaches mcpd only through the
typed REST client (:mod:`client`) and MCP servers only over the wire.

``main`` (the app and its global options), ``state`` (which mcpd and credentials; errors to
exit codes), ``config`` (the config file's contexts), ``session`` (config, login, logout,
auth), ``resources`` (get, describe, create, delete), ``apply``, ``logs``, ``policy``
(offline policy tooling), ``testmcp`` (``mcpctl test mcp``), ``output`` and ``errors``.
"""
