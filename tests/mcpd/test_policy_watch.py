"""mcpd's policy stream, followed by mcplocal's PolicyFollower over real HTTP: the copy
decides exactly as mcpd does, and changes (bindings, revocations) reach it at once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from mcplocal.policy import PolicyFollower
from tests.mcpd.test_instances import ROOT, Mcpd, make_settings, serve_mcpd

KINDS = ("servers", "tools", "projects", "secrets", "rbac", "mcptokens")
ACTIONS = ("get", "list", "create", "update", "delete", "run", "logs", "proxy")


@pytest.fixture
def mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mcpd:
    monkeypatch.chdir(ROOT)
    with serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path)) as m:
        yield m  # type: ignore[misc]


def follow(
    m: Mcpd, bearer: str, path: str, steps: Callable[[PolicyFollower], None]
) -> PolicyFollower:
    """Run a follower in the background while ``steps`` (sync, in a thread) acts."""

    follower = PolicyFollower(m.base, bearer, path=path)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower.run)
            assert await follower.wait_ready(10), follower.last_error
            await anyio.to_thread.run_sync(steps, follower)
            tg.cancel_scope.cancel()

    anyio.run(main)
    return follower


def wait_for(pred: Callable[[], bool], timeout: float = 1.0) -> float:
    began = time.monotonic()
    while not pred():
        assert time.monotonic() - began < timeout, "not within the time allowed"
        time.sleep(0.005)
    return time.monotonic() - began


def test_follower_decides_like_mcpd_and_sees_changes_at_once(mcpd: Mcpd) -> None:
    m = mcpd
    service = m.login("svc@example.com", "action:proxy")
    m.ok("POST", "/groups", json={"name": "devs", "members": []})
    http = {"url": "http://127.0.0.1:9/mcp"}
    m.ok("POST", "/servers", json={"name": "s1", "transport": "http", "http": http})
    m.ok("POST", "/projects", json={"name": "p1", "servers": ["s1"]})
    m.login("dev@example.com", "role:view,resource:servers,project:p1")
    m.ok("POST", "/rbac", json={"name": "devs-run", "subjects": ["Group:devs"],
                                "roleBindings": ["role:run,resource:servers,name:s1"]})  # fmt: skip
    tok = m.ok("POST", "/mcptokens", json={"name": "t1", "project": "p1",
                                          "bindings": ["role:run,resource:servers"]})  # fmt: skip
    mcpd_authz = m.app.state.runtime.authorizer
    subjects = ["User:dev@example.com", "User:svc@example.com", "Group:devs", "User:nobody"]
    subjects += [f"McpToken:{g.sha}" for g in mcpd_authz._tokens.values()]
    seen: dict[str, float] = {}

    def steps(f: PolicyFollower) -> None:
        assert f.authorizer is not None
        for sub, proj, kind, act in itertools.product(subjects, ("", "p1"), KINDS, ACTIONS):
            ours = f.authorizer.decide(sub, proj, kind, "s1", act)
            theirs = mcpd_authz.decide(sub, proj, kind, "s1", act)
            assert ours.allowed == theirs.allowed, (sub, proj, kind, act, ours, theirs)
            assert ours.reason == theirs.reason
        # a new binding reaches the copy
        m.ok("POST", "/rbac", json={"name": "late", "subjects": ["User:dev@example.com"],
                                    "roleBindings": ["role:edit,resource:secrets"]})  # fmt: skip
        seen["bind"] = wait_for(
            lambda: (
                f.authorizer is not None
                and f.authorizer.decide(
                    "User:dev@example.com", "", "secrets", "x", "create"
                ).allowed
            )
        )
        # a revocation reaches it
        m.ok("POST", "/mcptokens/t1/revoke")
        sha = next(g.sha for g in mcpd_authz._tokens.values() if g.name == "t1")
        seen["revoke"] = wait_for(lambda: bool(getattr(f.authorizer.token(sha), "revoked", 0)))
        assert not f.authorizer.decide(f"McpToken:{sha}", "p1", "servers", "s1", "run").allowed
        # membership: joining a group gains its bindings
        m.ok("PUT", "/groups/devs", json={"members": ["dev@example.com"]})
        wait_for(
            lambda: (
                f.authorizer is not None
                and f.authorizer.decide("User:dev@example.com", "", "servers", "s1", "run").allowed
            )
        )

    f = follow(m, service, "/api/v1/policy/watch", steps)
    assert f.changes >= 3
    assert tok["token"].startswith("mcpctl_pat_")


def test_a_user_follows_only_its_own_rules(mcpd: Mcpd) -> None:
    m = mcpd
    dev = m.login("dev@example.com", "role:view,resource:servers")
    m.login("other@example.com", "role:admin,resource:secrets")
    m.ok("POST", "/groups", json={"name": "ops", "members": []})
    m.ok("POST", "/rbac", json={"name": "ops-secrets", "subjects": ["Group:ops"],
                                "roleBindings": ["role:view,resource:secrets"]})  # fmt: skip

    def steps(f: PolicyFollower) -> None:
        assert f.authorizer is not None
        stored = [r for r in f.authorizer.rules() if r.source.startswith("db:")]
        assert stored and all(r.values[0] == "User:dev@example.com" for r in stored)
        assert not f.authorizer._tokens  # a user's own view holds no tokens
        assert not f.authorizer.decide("User:dev@example.com", "", "secrets", "x", "get").allowed
        # joining ops: the stream restarts from a snapshot that now has ops' rules
        m.ok("PUT", "/groups/ops", json={"members": ["dev@example.com"]})
        wait_for(
            lambda: (
                f.authorizer is not None
                and f.authorizer.decide("User:dev@example.com", "", "secrets", "x", "get").allowed
            ),
            timeout=5.0,
        )

    follow(m, dev, "/api/v1/auth/me/policy", steps)


def test_who_may_follow(mcpd: Mcpd) -> None:
    m = mcpd
    dev = m.login("dev@example.com", "role:view,resource:servers")
    r = httpx.get(f"{m.base}/api/v1/policy/watch", headers=m.h(dev))
    assert r.status_code == 403 and "proxy" in r.json()["detail"]
    m.ok("POST", "/projects", json={"name": "p1"})
    raw = m.ok("POST", "/mcptokens", json={"name": "t", "project": "p1"})["token"]
    r = httpx.get(f"{m.base}/api/v1/auth/me/policy", headers=m.h(raw))
    assert r.status_code == 403
    r = httpx.get(f"{m.base}/api/v1/policy/watch", headers=m.h(raw))
    assert r.status_code == 403
    # a user may report only its own calls
    call = {"server": "s", "tool": "t", "outcome": "allow", "durationMs": 1.0}
    r = httpx.post(f"{m.base}/api/v1/auth/me/calls", headers=m.h(dev),
                   json={"events": [{**call, "user": "someone@example.com"}]})  # fmt: skip
    assert r.status_code == 403
    r = httpx.post(f"{m.base}/api/v1/auth/me/calls", headers=m.h(dev),
                   json={"events": [{**call, "user": "dev@example.com"}]})  # fmt: skip
    assert r.status_code == 202
    r = httpx.post(f"{m.base}/api/v1/auditevents", headers=m.h(dev),
                   json={"events": [{**call, "user": "dev@example.com"}]})  # fmt: skip
    assert r.status_code == 403


def test_a_stream_ends_when_its_credential_is_revoked_or_loses_proxy(mcpd: Mcpd) -> None:
    """A follower whose token is revoked, or whose identity loses `proxy`, learns nothing
    more: mcpd ends its stream (within CREDENTIAL_CHECK_SECONDS), and it is refused after."""
    m = mcpd
    for lose in ("revoke", "unbind"):
        created = m.ok("POST", "/serviceaccounts", json={"name": f"bot-{lose}"})
        body = {"subjects": [f"ServiceAccount:bot-{lose}"], "roleBindings": ["action:proxy"]}
        m.ok("POST", "/rbac", json={"name": f"bot-{lose}", **body})
        raw = created["token"]
        url = f"{m.base}/api/v1/policy/watch"
        with httpx.stream("GET", url, headers=m.h(raw), timeout=30) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert "snapshot" in next(lines)
            if lose == "revoke":
                m.ok("POST", f"/serviceaccounts/bot-{lose}/tokens/{created['tokenPrefix']}/revoke")
            else:
                m.ok("DELETE", f"/rbac/bot-{lose}")
            began = time.monotonic()
            rest = [line for line in lines if '"heartbeat"' not in line]
            ended = time.monotonic() - began
        assert ended < 5, ended  # not the 15 s of a heartbeat, nor never
        assert all("snapshot" not in line for line in rest)
        again = m.call("GET", "/policy/watch", raw)
        assert again.status_code == (401 if lose == "revoke" else 403)
