"""mcplocal's own credential for mcpd, a face over the client's auth flow, against a real
mcpd: a given bearer, or a login kept fresh (and renewed on a 401 by the client)."""

from __future__ import annotations

import anyio
import pytest

from client import AsyncMcpdClient, McpdClient
from mcplocal.settings import McpdCredential
from tests.cli.conftest import ADMIN, PASSWORD, mcpd_url

__all__ = ["mcpd_url"]


def test_a_given_bearer_needs_no_network_and_one_is_required() -> None:
    credential = McpdCredential("http://127.0.0.1:1/", token="t")
    assert anyio.run(credential.headers) == {"Authorization": "Bearer t"}
    assert credential.mcpd_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="MCPLOCAL_MCPD_TOKEN"):
        McpdCredential("http://127.0.0.1:1", user=ADMIN)


def test_a_login_is_made_when_needed_and_renewed_when_old(mcpd_url: str) -> None:
    credential = McpdCredential(mcpd_url, user=ADMIN, password=PASSWORD)

    async def main() -> None:
        first = await credential.headers()
        assert first["Authorization"].startswith("Bearer mcpctl_ses_")
        assert await credential.headers() == first
        assert 0 < (credential.auth.renews_in() or 0) <= 12 * 3600 / 2  # half the session
        credential.auth.max_age = -1.0  # as if its renewal were due
        assert await credential.headers() != first
        credential.auth.max_age = None
        # the client, given the flow, logs in again when mcpd refuses the bearer
        with McpdClient(mcpd_url, credential.auth.token) as c:
            c.logout()
        async with AsyncMcpdClient(mcpd_url, credential.auth) as mcpd:
            assert (await mcpd.me())["user"] == ADMIN

    anyio.run(main)


def test_a_refused_login_says_who_and_what_mcpd_answered(mcpd_url: str) -> None:
    credential = McpdCredential(mcpd_url, user=ADMIN, password="wrong")
    with pytest.raises(RuntimeError) as err:
        anyio.run(credential.headers)
    message = str(err.value)
    assert message.startswith(f"mcplocal cannot log in to mcpd as {ADMIN}: {{")
    assert "wrong user name or password" in message


def test_a_login_refused_again_and_again_is_not_renewed_forever(mcpd_url: str) -> None:
    credential = McpdCredential(mcpd_url, user="nobody@example.com", password="wrong")

    async def main() -> None:
        with anyio.fail_after(20):
            await credential.keep_fresh(retry=0.01)  # returns: bounded, not a loop

    anyio.run(main)
    assert credential.auth.refused is not None
    assert "nobody@example.com was refused" in credential.auth.refused
