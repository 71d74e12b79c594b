"""The auth flow: driven by hand, without a network (every step of the generator), and then
over real HTTP against a real mcpd, through both faces of the client."""

from __future__ import annotations

import json
import time
from collections.abc import Generator

import anyio
import httpx2
import pytest

from client import AsyncMcpdClient, BearerAuth, McpdClient, NotAuthenticated
from tests.client.conftest import ADMIN, PASSWORD

Flow = Generator[httpx2.Request, httpx2.Response, None]


def request(url: str = "http://mcpd.test/api/v1/auth/me") -> httpx2.Request:
    return httpx2.Request("GET", url)


def answer(status: int, body: object = None) -> httpx2.Response:
    return httpx2.Response(status, json=body if body is not None else {"detail": "x"})


def ends(flow: Flow, response: httpx2.Response) -> None:
    """The flow takes ``response`` as the last: the client returns it."""
    with pytest.raises(StopIteration):
        flow.send(response)


def bearer(r: httpx2.Request) -> str | None:
    return r.headers.get("authorization")


# -- without a network ---------------------------------------------------------------------


def test_a_static_bearer_is_added_and_a_401_returned_as_it_is() -> None:
    auth = BearerAuth("t0")
    flow = auth.auth_flow(request())
    sent = next(flow)
    assert bearer(sent) == "Bearer t0"
    ends(flow, answer(401))
    assert auth.token == "t0" and not auth.renewable and not auth.stale()

    flow = auth.auth_flow(request())
    next(flow)
    ends(flow, answer(200, {"user": "u"}))


def test_no_bearer_no_header() -> None:
    flow = BearerAuth().auth_flow(request())
    assert bearer(next(flow)) is None
    ends(flow, answer(401))


def test_a_login_first_when_there_is_no_bearer_then_the_request() -> None:
    auth = BearerAuth(username="svc@example.com", password="pw")
    assert auth.stale()
    flow = auth.auth_flow(request())
    login = next(flow)
    assert (login.method, str(login.url)) == ("POST", "http://mcpd.test/api/v1/auth/login")
    assert json.loads(login.content) == {"username": "svc@example.com", "password": "pw"}
    sent = flow.send(answer(200, {"token": "t1", "user": "svc@example.com"}))
    assert sent.url.path == "/api/v1/auth/me" and bearer(sent) == "Bearer t1"
    ends(flow, answer(200, {}))
    assert auth.token == "t1" and not auth.stale()


def test_a_401_logs_in_again_once_and_retries_once() -> None:
    auth = BearerAuth("old", username="svc@example.com", password="pw")
    original = request()
    flow = auth.auth_flow(original)
    assert bearer(next(flow)) == "Bearer old"
    assert flow.send(answer(401)).url.path == "/api/v1/auth/login"
    retried = flow.send(answer(200, {"token": "new"}))
    assert retried is original and bearer(retried) == "Bearer new"
    ends(flow, answer(401))  # still refused: that answer is returned, no second round
    assert auth.token == "new"


def test_a_failed_login_raises_what_mcpd_said() -> None:
    auth = BearerAuth("old", username="svc@example.com", password="bad")
    flow = auth.auth_flow(request())
    next(flow)
    flow.send(answer(401))
    with pytest.raises(NotAuthenticated, match="wrong user name or password") as err:
        flow.send(answer(401, {"detail": "wrong user name or password"}))
    assert err.value.status == 401 and "wrong user name" in err.value.text
    assert auth.token == "old"


def test_a_bearer_older_than_max_age_is_renewed_before_the_request() -> None:
    auth = BearerAuth("old", username="u", password="p", max_age=3600)
    assert not auth.stale()
    auth.max_age = -1.0  # as if an hour had passed
    assert auth.stale()
    flow = auth.auth_flow(request())
    assert next(flow).url.path == "/api/v1/auth/login"
    assert bearer(flow.send(answer(200, {"token": "new"}))) == "Bearer new"


def test_a_login_is_renewed_at_half_its_sessions_lifetime() -> None:
    from datetime import UTC, datetime, timedelta

    auth = BearerAuth(username="svc@example.com", password="pw")
    flow = auth.auth_flow(request())
    next(flow)
    expires = (datetime.now(UTC) + timedelta(seconds=0.4)).isoformat()
    flow.send(answer(200, {"token": "t1", "expiresAt": expires}))
    assert not auth.stale() and 0 < (auth.renews_in() or 0) <= 0.2
    time.sleep(0.25)
    assert auth.stale()  # before the session expires, not after
    flow = auth.auth_flow(request())
    assert next(flow).url.path == "/api/v1/auth/login"


def test_a_401_it_cannot_answer_is_kept_as_refused_until_an_answer_is_not() -> None:
    auth = BearerAuth("mcpctl_sa_x")
    flow = auth.auth_flow(request())
    next(flow)
    ends(flow, answer(401))
    assert auth.refused == "mcpd answered 401 to GET /api/v1/auth/me"
    flow = auth.auth_flow(request())
    next(flow)
    ends(flow, answer(200, {}))
    assert auth.refused is None

    login = BearerAuth("old", username="svc@example.com", password="pw")
    flow = login.auth_flow(request())
    next(flow)
    flow.send(answer(401))
    with pytest.raises(NotAuthenticated):
        flow.send(answer(401, {"detail": "wrong user name or password"}))
    assert login.refused == "the login as svc@example.com was refused: wrong user name or password"


def test_a_refresh_callback_gives_the_fresh_bearer_on_a_401() -> None:
    fresh = iter(["t1", "t1", None])
    auth = BearerAuth("t0", refresh=lambda: next(fresh))
    flow = auth.auth_flow(request())
    assert bearer(next(flow)) == "Bearer t0"
    assert bearer(flow.send(answer(401))) == "Bearer t1"
    ends(flow, answer(200, {}))
    # the same bearer again, or none: the 401 is returned
    for _ in range(2):
        flow = auth.auth_flow(request())
        next(flow)
        ends(flow, answer(401))
    # no bearer given: the callback gives the first one
    auth = BearerAuth(refresh=lambda: "first")
    assert bearer(next(auth.auth_flow(request()))) == "Bearer first"


def test_a_bearer_renewed_by_another_request_is_used_without_a_second_login() -> None:
    auth = BearerAuth("old", username="u", password="p")
    a, b = auth.auth_flow(request()), auth.auth_flow(request())
    next(a), next(b)
    assert a.send(answer(401)).url.path == "/api/v1/auth/login"
    a.send(answer(200, {"token": "new"}))
    assert bearer(b.send(answer(401))) == "Bearer new"  # b was sent with `old`


def test_the_login_goes_to_the_mcpd_the_request_goes_to() -> None:
    auth = BearerAuth(username="u", password="p")
    login = next(auth.auth_flow(request("https://h.example:8443/mcpd/api/v1/projects/p?x=1")))
    assert str(login.url) == "https://h.example:8443/mcpd/api/v1/auth/login"


# -- over real HTTP, against mcpd ------------------------------------------------------------


def revoked_session(mcpd_url: str) -> str:
    """A session bearer that mcpd no longer takes (logged out)."""
    with McpdClient(mcpd_url) as anonymous:
        token = str(anonymous.login(ADMIN, PASSWORD)["token"])
    with McpdClient(mcpd_url, token) as c:
        c.logout()
    return token


def test_sync_face_logs_in_again_on_a_401_and_a_static_bearer_does_not(mcpd_url: str) -> None:
    token = revoked_session(mcpd_url)
    with McpdClient(mcpd_url, token) as c, pytest.raises(NotAuthenticated):
        c.me()
    auth = BearerAuth(token, username=ADMIN, password=PASSWORD)
    with McpdClient(mcpd_url, auth=auth) as c:
        assert c.me()["user"] == ADMIN
        renewed = auth.token
        assert renewed and renewed != token
        assert c.me()["user"] == ADMIN and auth.token == renewed  # no login without a 401
    wrong = BearerAuth(token, username=ADMIN, password="nope")
    with (
        McpdClient(mcpd_url, auth=wrong) as c,
        pytest.raises(NotAuthenticated, match="wrong user name or password"),
    ):
        c.me()


def test_async_face_logs_in_again_on_a_401_and_a_static_bearer_does_not(mcpd_url: str) -> None:
    token = revoked_session(mcpd_url)

    async def main() -> None:
        async with AsyncMcpdClient(mcpd_url, token) as c:
            with pytest.raises(NotAuthenticated):
                await c.me()
            assert await c.fresh_headers() == {"Authorization": f"Bearer {token}"}
        auth = BearerAuth(token, username=ADMIN, password=PASSWORD)
        async with AsyncMcpdClient(mcpd_url, auth) as c:
            assert (await c.me())["user"] == ADMIN
            assert auth.token != token
        # a login only: the first header comes from logging in
        auth = BearerAuth(username=ADMIN, password=PASSWORD)
        async with AsyncMcpdClient(mcpd_url, auth) as c:
            headers = await c.fresh_headers()
            assert headers == {"Authorization": f"Bearer {auth.token}"}
            assert await c.fresh_headers() == headers  # fresh enough: no second login
            assert (await c.me())["user"] == ADMIN

    anyio.run(main)


def test_the_login_has_the_timeouts_of_the_request_it_is_for() -> None:
    seen: list[httpx2.Request] = []

    def handler(r: httpx2.Request) -> httpx2.Response:
        seen.append(r)
        return answer(200, {"token": "t1"} if r.url.path.endswith("/login") else {"user": "u"})

    auth = BearerAuth(username="u", password="p")
    with McpdClient(
        "http://mcpd.test", auth=auth, timeout=7.0, transport=httpx2.MockTransport(handler)
    ) as c:
        assert c.me() == {"user": "u"}

    async def main() -> dict[str, str]:
        mock = httpx2.MockTransport(handler)
        async with AsyncMcpdClient(
            "http://mcpd.test", BearerAuth(username="u", password="p"), timeout=5.0, transport=mock
        ) as c:
            return await c.fresh_headers()

    assert anyio.run(main) == {"Authorization": "Bearer t1"}
    login, me, again = seen
    assert [r.url.path for r in seen] == [
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/auth/login",
    ]
    assert login.extensions["timeout"] == me.extensions["timeout"] == httpx2.Timeout(7.0).as_dict()
    assert again.extensions["timeout"] == httpx2.Timeout(5.0).as_dict()
