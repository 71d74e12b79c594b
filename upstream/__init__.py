"""Reaching MCP servers, shared by mcpd and mcplocal.

A foundation: it imports at most :mod:`authz`, never mcpd, mcplocal or the CLI.
"""
