"""mcpd's FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from authz import set_authorizer
from authz.store import load_authorizer
from mcpd.db import make_engine, migrate
from mcpd.settings import Settings

log = logging.getLogger("mcpd")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        migrate(engine)  # an empty database is brought to the newest schema
        authorizer = load_authorizer(
            engine, model_path=settings.model_path, policy_dir=settings.policy_dir
        )
        set_authorizer(authorizer)
        app.state.engine = engine
        app.state.authorizer = authorizer
        log.info(
            "mcpd ready: %d policy lines, %s index",
            len(authorizer.index),
            "fast" if authorizer.indexed else "no (plain enforcer)",
        )
        try:
            yield
        finally:
            set_authorizer(None)
            engine.dispose()

    app = FastAPI(title="mcpd", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            with app.state.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
