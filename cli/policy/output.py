"""The ``-o`` choice of the policy commands that print text or JSON only."""

from __future__ import annotations

from enum import StrEnum


class Output(StrEnum):
    text = "text"
    json = "json"
