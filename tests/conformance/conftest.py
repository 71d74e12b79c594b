"""The ``stack`` fixture (mcpd + mcplocal serve) of tests/mcplocal."""

from tests.mcplocal.conftest import stack as stack
