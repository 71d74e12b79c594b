"""Project bodies: a named set of servers and the proxy model mcplocal applies to them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mcpd.errors import Invalid
from mcpd.models import Project
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta

PROXY_MODELS = ("passthrough", "paginate", "summarize")


class ProxyOptions(CamelModel):
    """Settings of a project's proxy model (mcplocal applies them to tool results)."""

    page_chars: int | None = Field(default=None, ge=100, le=10_000_000)
    summarizer: DnsName | None = Field(
        default=None,
        description="the name of one of the summarizer endpoints mcplocal's operator "
        "configured (MCPLOCAL_SUMMARIZERS)",
    )
    summarize_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\s]+$",
        description="deprecated: the URL of one of mcplocal's configured summarizers (mcplocal "
        "refuses any other); name it with `summarizer` instead",
    )  # fmt: skip
    summarize_model: str | None = Field(default=None, max_length=255)
    summarize_max_input_chars: int | None = Field(default=None, ge=100, le=10_000_000)
    summarize_timeout: float | None = Field(default=None, gt=0, le=600)


class ProjectIn(CamelModel):
    name: DnsName
    description: str = Field(default="", max_length=2000)
    servers: list[DnsName] = Field(default_factory=list, max_length=1000)
    proxy_model: Literal["passthrough", "paginate", "summarize"] = "passthrough"
    proxy_options: ProxyOptions = Field(default_factory=ProxyOptions)

    @model_validator(mode="after")
    def _summarizer(self) -> ProjectIn:
        check_summarizer(self.proxy_model, dump_options(self.proxy_options), ValueError)
        return self


def check_summarizer(
    proxy_model: str, options: dict[str, Any], error: type[Exception] = Invalid
) -> None:
    """``summarize`` names one of mcplocal's summarizer endpoints (or, deprecated, its URL)."""
    if proxy_model == "summarize" and not (
        options.get("summarizer") or options.get("summarizeUrl")
    ):
        raise error(
            "proxyModel summarize needs proxyOptions.summarizer: the name of one of "
            "mcplocal's configured summarizers (MCPLOCAL_SUMMARIZERS), or the deprecated "
            "summarizeUrl naming one of their URLs"
        )


class ProjectUpdate(CamelModel):
    description: str | None = Field(default=None, max_length=2000)
    servers: list[DnsName] | None = Field(default=None, max_length=1000)
    proxy_model: Literal["passthrough", "paginate", "summarize"] | None = None
    proxy_options: ProxyOptions | None = None
    version: int | None = None


class ProjectOut(Meta):
    description: str
    servers: list[str]
    proxy_model: str
    proxy_options: dict[str, Any] = Field(default_factory=dict)


def project_out(p: Project) -> ProjectOut:
    return ProjectOut(
        **meta(p),
        description=p.description,
        servers=[s.server_name for s in p.servers],
        proxy_model=p.proxy_model,
        proxy_options=p.proxy_options or {},
    )


def dump_options(options: ProxyOptions) -> dict[str, Any]:
    """Proxy options as stored: camelCase, unset ones left out."""
    return options.model_dump(by_alias=True, exclude_none=True)


__all__ = [
    "PROXY_MODELS",
    "ProjectIn",
    "ProjectOut",
    "ProjectUpdate",
    "ProxyOptions",
    "check_summarizer",
    "dump_options",
    "project_out",
]
