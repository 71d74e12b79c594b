"""Per-invocation state: which mcpd, which credentials, and error-to-exit-code mapping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cli.config import Config, Context
from cli.errors import DENIED, ERROR, INVALID, fail
from client import (
    ApiError,
    ClientError,
    Conflict,
    Denied,
    InvalidInput,
    McpdClient,
    NotAuthenticated,
    NotFound,
    Unreachable,
)


@dataclass
class State:
    context_name: str | None = None
    server_override: str | None = None
    color: bool = True

    def config(self) -> Config:
        try:
            return Config.load()
        except ValueError as exc:
            fail(str(exc), INVALID)

    def context(self) -> Context:
        try:
            ctx = self.config().context(self.context_name)
        except ValueError as exc:
            fail(str(exc), INVALID)
        server = self.server_override or os.environ.get("MCPCTL_SERVER")
        if server:
            ctx = Context(server=server, user=ctx.user, token=ctx.token)
        return ctx

    @contextmanager
    def client(self, *, auth: bool = True) -> Iterator[McpdClient]:
        ctx = self.context()
        if auth and not ctx.token:
            fail("not logged in: run `mcpctl login`")
        with McpdClient(ctx.server, ctx.token if auth else None) as c, api_errors():
            yield c


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn the client's errors into a message and the documented exit code."""
    try:
        yield
    except NotAuthenticated as exc:
        fail(f"{exc.detail}: run `mcpctl login`", ERROR)
    except Denied as exc:
        missing = exc.body.get("missing")
        extra = ""
        if isinstance(missing, list) and missing:
            extra = "\nmissing:\n" + "\n".join(
                f"  {m.get('verb')} from {m.get('binding')}" for m in missing if isinstance(m, dict)
            )
        fail(f"denied: {exc.detail}{extra}", DENIED)
    except InvalidInput as exc:
        fail(f"invalid: {exc.detail}", INVALID)
    except (NotFound, Conflict) as exc:
        fail(exc.detail, ERROR)
    except Unreachable as exc:
        fail(f"{exc}; check `mcpctl config view` or --server", ERROR)
    except ApiError as exc:  # 429 (locked out after failed logins), 5xx, ...
        fail(exc.detail, ERROR)
    except ClientError as exc:
        fail(str(exc), ERROR)
