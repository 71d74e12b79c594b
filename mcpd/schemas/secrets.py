"""Secret bodies: named key/value sets; values are write-only."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from mcpd.models import Secret
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")


class SecretIn(CamelModel):
    name: DnsName
    data: dict[str, str] = Field(max_length=256)

    @field_validator("data")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not _KEY.match(k):
                raise ValueError(f"`{k}` is not a valid key: use letters, digits, '_', '.', '-'")
            if len(val) > 65536:
                raise ValueError(f"the value of `{k}` is longer than 64 KiB")
        return v


class SecretUpdate(CamelModel):
    data: dict[str, str] = Field(max_length=256)
    version: int | None = None

    _keys = field_validator("data")(SecretIn._keys.__func__)  # type: ignore[attr-defined]


class SecretOut(Meta):
    data: dict[str, str] = Field(description="values are write-only: always `***`")


def secret_out(s: Secret) -> SecretOut:
    return SecretOut(**meta(s), data=dict.fromkeys(s.keys, "***"))


__all__ = ["SecretIn", "SecretOut", "SecretUpdate", "secret_out"]
