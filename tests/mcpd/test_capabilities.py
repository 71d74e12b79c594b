"""The upstream URL check of issue 13 (mcpd.addresses.blocked), case by case,
and its operator allow-list setting (MCPD_UPSTREAM_ALLOW)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcpd.addresses import blocked
from mcpd.settings import Settings

HOST, PORT = "127.0.0.1", 8420


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local or cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "link-local or cloud metadata"),
        ("http://[fe80::1%25eth0]/", "link-local or cloud metadata"),
        ("http://[fd00:ec2::254]/", "link-local or cloud metadata"),
        ("http://100.100.100.200/", "link-local or cloud metadata"),
        ("http://METADATA.google.internal./v1", "cloud metadata service"),
        ("http://127.0.0.1:8420/api/v1/auth/me", "mcpd's own address"),
        ("http://127.1.2.3:8420/", "mcpd's own address"),
        ("http://0.0.0.0:8420/", "mcpd's own address"),
        ("http://[::1]:8420/", "mcpd's own address"),
        ("http://localhost:8420/", "mcpd's own address"),
    ],
)
def test_refused_upstreams(url: str, why: str) -> None:
    got = blocked(url, host=HOST, port=PORT, allow=[])
    assert got is not None and why in got, got


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/mcp",  # loopback upstreams stay allowed (tests use them)
        "http://localhost:8421/mcp",
        "https://127.0.0.1/mcp",  # port 443, not mcpd's
        "http://10.0.0.8:8420/mcp",  # mcpd listens on loopback only
        "http://no-such-host.invalid/mcp",  # unresolvable: nothing to reach
    ],
)
def test_allowed_upstreams(url: str) -> None:
    assert blocked(url, host=HOST, port=PORT, allow=[]) is None


def test_the_operator_allow_list() -> None:
    allow = Settings(upstream_allow="169.254.0.0/16, metadata.google.internal").upstream_allow_list
    assert allow == ["169.254.0.0/16", "metadata.google.internal"]
    assert blocked("http://169.254.169.254/", host=HOST, port=PORT, allow=allow) is None
    assert blocked("http://metadata.google.internal/", host=HOST, port=PORT, allow=allow) is None
    assert blocked("http://[fe80::1]/", host=HOST, port=PORT, allow=allow) is not None
    own = blocked("http://127.0.0.1:8420/", host=HOST, port=PORT, allow=["127.0.0.1"])
    assert own is None
    with pytest.raises(ValidationError, match="upstream allow-list entry"):
        Settings(upstream_allow="10.0.0.0/8, a b")


def test_listening_on_every_address_refuses_this_hosts_addresses() -> None:
    assert blocked("http://127.0.0.1:8420/", host="0.0.0.0", port=PORT, allow=[]) is not None
    assert blocked("http://127.0.0.1:8421/", host="0.0.0.0", port=PORT, allow=[]) is None
