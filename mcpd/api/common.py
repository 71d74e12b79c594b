"""What every resource router shares: the list endpoints' page parameters.

``CamelModel`` is re-exported for the routers whose bodies still live beside them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from mcpd.schemas.common import CamelModel

#: The list endpoints' page parameters.
Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=255)]

__all__ = ["After", "CamelModel", "Limit"]
