"""User bodies: people who log in (passwords are write-only, kept as Argon2 hashes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from authz import InvalidName
from authz.vocabulary import Subject
from mcpd.models import User
from mcpd.schemas.common import CamelModel, Meta, meta
from mcpd.security import MIN_PASSWORD_LENGTH


def _user_name(v: str) -> str:
    try:
        Subject.parse(f"User:{v}")
    except InvalidName as exc:
        raise ValueError(str(exc)) from exc
    return v


UserName = Annotated[str, AfterValidator(_user_name)]


class UserIn(CamelModel):
    name: UserName
    display_name: str = Field(default="", max_length=255)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    disabled: bool = False


class UserUpdate(CamelModel):
    display_name: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    disabled: bool | None = None
    version: int | None = Field(default=None, description="optimistic concurrency: 409 if stale")


class UserOut(Meta):
    display_name: str
    disabled: bool


def user_out(u: User) -> UserOut:
    return UserOut(**meta(u), display_name=u.display_name, disabled=u.disabled)


__all__ = ["UserIn", "UserName", "UserOut", "UserUpdate", "user_out"]
