"""The typed REST client for mcpd's API, used by the CLI and mcplocal.

A foundation: it imports none of the buildings (mcpd, mcplocal, cli).
"""
