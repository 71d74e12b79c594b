"""Shared fixtures: real databases (a SQLite file and a fresh PostgreSQL database); the
order the test files run in."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "MCPCTL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# The files that take longest, longest first (as `make test`'s slowest tests showed). `make
# test` hands whole files to its pytest-xdist workers in collection order, so when these
# come last one worker runs them alone while the other idles; first, they overlap the rest.
SLOW_FIRST = (
    "tests/mcplocal/test_identity.py",
    "tests/authz/test_policy_tools.py",
    "tests/authz/test_differential.py",
    "tests/replicas/test_replicas.py",
    "tests/mcplocal/test_audit_delivery.py",
    "tests/mcpd/test_escalation_property.py",
    "tests/test_quickstart.py",
    "tests/replicas/test_continuous.py",
    "tests/bench/test_proxy_bench_smoke.py",
    "tests/replicas/test_pg_restart_audit.py",
    "tests/mcpd/test_fuzz_openapi.py",
    "tests/conformance/test_suite.py",
    "tests/conformance/test_everything.py",
    "tests/oauth/test_security.py",
    "tests/mcpd/test_escalation.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run SLOW_FIRST's files first (a stable sort: every file keeps its own order)."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"mcpctl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc}); "
            "run ./scripts/ensure-services.sh"
        )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database of each kind: a SQLite file, and a schema in the PostgreSQL one."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'mcpd.db'}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    setup = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with setup.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()
    with setup.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    setup.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database of each kind (SQLite file; a schema of the PG database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mcpd.db'}"
        return
    url = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    setup = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with setup.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{url}?options=-csearch_path%3D{schema}"
    with setup.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    setup.dispose()
