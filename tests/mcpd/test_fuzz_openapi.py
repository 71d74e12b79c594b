"""Schemathesis fuzzing of every /api/v1 operation, as the admin and as a token with no rights.

mcpd runs in this process (uvicorn in a thread, on a loopback port), over a SQLite file and
over a schema of the test PostgreSQL database, so the checks can read the database. For
every generated request:

* no 5xx, and a JSON body matches its declared response schema;
* no response body contains a secret value, a password or its hash, a secret's ciphertext,
  a login session's raw value or hash, or a raw McpToken other than the one a login or a
  token create returns once. McpToken hashes reach only the admin, and only where SPEC §3
  shows them: RbacDefinition subjects (``McpToken:<sha256>``), audit events, and a backup
  (which, asked with ``secrets=true``, also holds secret values);
* the token with no bindings is allowed nothing but the routes about itself.

Path, query and body names are half the time those of the objects made at start, so
requests reach real objects too. The token's run comes first: the admin's may delete them.

Bounded: a few examples per operation (``MCPD_FUZZ_EXAMPLES`` raises it), derandomized so
the normal suite is stable (``MCPD_FUZZ_SEED`` explores other inputs).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
import uvicorn
from cryptography.fernet import Fernet
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

from mcpd.app import create_app
from mcpd.models import LoginSession, McpToken, Secret, User
from mcpd.runtime import Runtime
from mcpd.settings import Settings

ADMIN = "root@example.com"
PASSWORD = "correct horse battery"
PROJECT = "fuzz-home-q7x"  # unlikely to be generated, so fuzzed deletes leave it alone
SECRET_VALUE = "s3cret-value-" + os.urandom(8).hex()

# never the admin: a fuzzed DELETE /users/{name} would end the run
NAMES = [PROJECT, "fuzz-secret", "fuzz-server", "fuzz-user", "fuzz-token", "mcptoken-fuzz-token"]
EXAMPLES = int(os.environ.get("MCPD_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("MCPD_FUZZ_SEED")


def _openapi() -> dict[str, Any]:
    settings = Settings(database_url="sqlite://", secrets_key_file=Path("/nonexistent/key"))
    schema: dict[str, Any] = create_app(settings).openapi()  # no start-up: no database needed
    return schema


_config = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": EXAMPLES,
            "database": "none",
            "deterministic": SEED is None,
            "mode": "all",
        },
        # names of the objects made below, so requests reach real objects as well as absent ones
        "dictionaries": {"names": {"values": NAMES}},
        "parameters": {
            f"{where}.{param}": {"dictionary": "names", "probability": 0.5}
            for where, param in (
                ("path", "name"),
                ("path", "project"),
                ("query", "project"),
                ("body", "project"),
                ("body", "name"),
            )
        },
        **({"seed": int(SEED)} if SEED else {}),
    }
)
# Streams that stay open by design (a policy follower's feed, `logs --follow`) are not
# fuzzed: a generated request would wait on them for ever. tests/mcpd/test_policy_watch.py
# and test_instances.py cover who may open them and what they carry.
STREAMS = r"^/api/v1/(policy/watch|auth/me/policy|servers/\{name\}/logs)$"
schema = (
    schemathesis.openapi.from_dict(_openapi(), config=_config)
    .include(path_regex="^/api/v1/")
    .exclude(path_regex=STREAMS)
)

RAW_TOKEN = re.compile(r"mcpctl_(?:pat|ses)_[0-9A-Za-z]{43}")
# where SPEC §3 shows McpToken hashes (RbacDefinition subjects, audit events), to callers
# allowed to read those
SHA_SHOWN = re.compile(r"^/api/v1/(rbac|rbac/\{name\}|auditevents|backup)$")


@dataclass
class Live:
    base: str
    rt: Runtime
    admin: str
    token: str
    forbidden: list[str] = field(default_factory=list)

    def login(self) -> str:
        r = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={"username": ADMIN, "password": PASSWORD},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        raw: str = r.json()["token"]
        return raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A SQLite file, or a fresh schema of the test PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'mcpd.db'}"
        return
    url = request.getfixturevalue("pg_url")
    schema_name = f"fuzz_{uuid.uuid4().hex[:12]}"
    setup = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with setup.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema_name}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema_name}"
    finally:
        with setup.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        setup.dispose()


@pytest.fixture(scope="module")
def live(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(
            database_url=database,
            bootstrap_admin=ADMIN,
            bootstrap_password=PASSWORD,  # type: ignore[arg-type]
            secrets_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
            secrets_key_file=tmp / "unused.key",
            login_attempts_per_minute=1000,
        )
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="mcpd-fuzz", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "mcpd did not start"
            assert time.monotonic() < deadline, "mcpd did not start within 30 s"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        yield _populate(base, app.state.runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "mcpd's server thread did not stop"


def _populate(base: str, rt: Runtime) -> Live:
    """A secret, a server using it, a project, a user and an McpToken with no bindings."""
    with httpx.Client(base_url=f"{base}/api/v1", timeout=10) as c:
        r = c.post("/auth/login", json={"username": ADMIN, "password": PASSWORD})
        admin = r.json()["token"]
        h = {"Authorization": f"Bearer {admin}"}

        def ok(method: str, path: str, body: Any) -> Any:
            resp = c.request(method, path, json=body, headers=h)
            assert resp.status_code < 300, resp.text
            return resp.json()

        ok("POST", "/secrets", {"name": "fuzz-secret", "data": {"api-key": SECRET_VALUE}})
        ok(
            "POST",
            "/servers",
            {
                "name": "fuzz-server",
                "transport": "stdio",
                "stdio": {
                    "command": "mcp-server-x",
                    "env": {"API_KEY": {"secretRef": "fuzz-secret/api-key"}},
                },
            },
        )
        ok("POST", "/projects", {"name": PROJECT, "servers": ["fuzz-server"]})
        ok("POST", "/users", {"name": "fuzz-user", "password": "fuzz user password"})
        created = ok(
            "POST", "/mcptokens", {"name": "fuzz-token", "project": PROJECT, "rbac": "empty"}
        )
    return Live(
        base=base,
        rt=rt,
        admin=admin,
        token=created["token"],
        forbidden=[SECRET_VALUE, PASSWORD, "fuzz user password", "$argon2"],
    )


def _stored_secrets(rt: Runtime) -> tuple[set[str], set[str], set[str]]:
    """McpToken hashes, login session hashes, and the ciphertexts and password hashes."""
    with rt.sessions() as s:
        token_shas = set(s.scalars(select(McpToken.token_sha)))
        session_shas = set(s.scalars(select(LoginSession.token_sha)))
        sealed = set(s.scalars(select(Secret.ciphertext)))
        sealed |= {h for h in s.scalars(select(User.password_hash)) if h}
    return token_shas, session_shas, sealed


def _check_no_leak(live: Live, case: schemathesis.Case, response: Any, as_admin: bool) -> None:
    text: str = response.text
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    for value in live.forbidden:
        if value == SECRET_VALUE and as_admin and _backup_with_secrets(case):
            continue  # asked for explicitly, with the `backup` operation
        assert value not in text, f"{where}: body contains a secret value: {text[:500]}"
    token_shas, session_shas, sealed = _stored_secrets(live.rt)
    for value in session_shas | sealed:
        assert value not in text, f"{where}: body contains a stored secret: {text[:500]}"
    for sha in token_shas:
        if sha in text:
            shown = as_admin and SHA_SHOWN.match(case.path) and case.method == "GET"
            assert shown, f"{where}: body contains an McpToken hash: {text[:500]}"
    own = _returned_once(case, response)
    for raw in RAW_TOKEN.findall(text):
        assert raw == own, f"{where}: body contains a raw token: {text[:500]}"


def _backup_with_secrets(case: schemathesis.Case) -> bool:
    flag = str((case.query or {}).get("secrets", "")).lower()
    return case.method == "GET" and case.path == "/api/v1/backup" and flag in ("true", "1")


def _returned_once(case: schemathesis.Case, response: Any) -> str | None:
    """The raw credential a login or token create returns (that one response only)."""
    created = (case.method, case.path, response.status_code) in {
        ("POST", "/api/v1/auth/login", 200),
        ("POST", "/api/v1/mcptokens", 201),
    }
    if not created:
        return None
    raw: str = response.json()["token"]
    return raw


def _validate(case: schemathesis.Case, response: Any) -> None:
    """No 5xx; a JSON body matches its declared schema (YAML streams are not checked)."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    json_body = (headers.get("content-type") or [""])[0].startswith("application/json")
    checks = (
        [not_a_server_error, response_schema_conformance] if json_body else [not_a_server_error]
    )
    case.validate_response(response, checks=checks)


@schema.parametrize()
def test_fuzz_as_token_without_bindings(case: schemathesis.Case, live: Live) -> None:
    response = case.call(base_url=live.base, headers={"Authorization": f"Bearer {live.token}"})
    _validate(case, response)
    _check_no_leak(live, case, response, as_admin=False)
    if response.status_code < 300:  # only what any caller may do on itself, or public
        assert case.path in {
            "/api/v1/auth/me",
            "/api/v1/auth/can-i",
            "/api/v1/auth/can-i/list",  # its own access list (another's needs impersonate)
            "/api/v1/auth/login",
            "/api/v1/mcptokens/introspect",
        }, f"{case.method} {case.path} allowed a token with no bindings"


@schema.parametrize()
def test_fuzz_as_admin(case: schemathesis.Case, live: Live) -> None:
    # a logout ends the session it is sent with: give each its own
    bearer = live.login() if case.path == "/api/v1/auth/logout" else live.admin
    response = case.call(base_url=live.base, headers={"Authorization": f"Bearer {bearer}"})
    _validate(case, response)
    _check_no_leak(live, case, response, as_admin=True)
