"""Errors raised by the policy engine.

Every error here carries a message meant for a person: lowercase, no trailing
period, user input in backticks. Callers map them to their wire format (mcpd to
problem+json, the CLI to exit code 3 for invalid input).

    AuthzError                 base class
    ├── InvalidName            a subject, project, kind or object name is malformed
    ├── BindingError           a role binding string cannot be parsed or names unknown things
    ├── PolicyError            a policy file or stored rule cannot be loaded
    └── DecisionTableError     a `policy test` decision table is malformed
"""

from __future__ import annotations


class AuthzError(Exception):
    """Base class of every error the policy engine raises."""


class InvalidName(AuthzError, ValueError):
    """A subject, project, kind or object name does not follow the naming rules."""


class BindingError(AuthzError, ValueError):
    """A role binding is malformed or refers to an unknown role, operation or kind."""


class PolicyError(AuthzError):
    """A policy file, the model, or a stored policy rule is invalid."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class DecisionTableError(AuthzError, ValueError):
    """A decision table (the input of `policy test`) is malformed."""
