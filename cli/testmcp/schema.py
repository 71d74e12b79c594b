"""The ``tools/list`` check: every tool's name and input schema, against the MCP spec.

It works on the raw result, because the SDK's typed result rejects a bad schema as a
whole without naming the tool. A name outside the spec's characters is a problem; one
that only some clients refuse (over 64 characters, or with ``.``) is a warning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cli.testmcp.report import printable

__all__ = ["SPEC_NAME", "STRICT_NAME", "Listing", "check_tools"]

SPEC_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
STRICT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Listing:
    """What ``tools/list`` said, checked: the names, and what is wrong with them."""

    names: list[str] = field(default_factory=list)
    with_output_schema: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_tools(tools: list[Any]) -> Listing:
    """Names, problems and warnings of the ``tools`` of a raw ``tools/list`` result."""
    out = Listing()
    for i, tool in enumerate(tools, 1):
        if not isinstance(tool, dict):
            out.problems.append(f"tool #{i}: not a JSON object")
            continue
        name = tool.get("name")
        label = f"`{printable(name)}`" if isinstance(name, str) else f"tool #{i}"
        if not isinstance(name, str) or not SPEC_NAME.fullmatch(name):
            out.problems.append(f"{label}: a name must be 1-128 characters of A-Z a-z 0-9 _ . -")
        elif not STRICT_NAME.fullmatch(name):
            out.warnings.append(
                f"{label}: some clients accept only 1-64 characters of A-Z a-z 0-9 _ -"
            )
        if isinstance(name, str):
            if name in out.names:
                out.problems.append(f"{label}: duplicate name")
            out.names.append(name)
            if tool.get("outputSchema") is not None:
                out.with_output_schema.add(name)
        schema = tool.get("inputSchema")
        if not isinstance(schema, dict):
            out.problems.append(f"{label}: inputSchema is missing or not a JSON object")
        elif schema.get("type") != "object":
            got = json.dumps(schema.get("type"))
            out.problems.append(f"{label}: inputSchema must have type `object`, not {got}")
        elif not isinstance(schema.get("properties", {}), dict):
            out.problems.append(f"{label}: inputSchema.properties must be an object")
        elif not isinstance(schema.get("required", []), list):
            out.problems.append(f"{label}: inputSchema.required must be a list")
    return out
