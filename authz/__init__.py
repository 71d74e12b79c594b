"""mcpctl's policy engine: one Casbin model, one policy set, one decision function.

Everything about authorization lives here, with no web framework, HTTP client or MCP SDK:

* ``model.conf`` and ``policies/*.csv`` - the model and the policy files security teams own
* :mod:`authz.vocabulary` - subjects, resource kinds, verbs and naming rules
* :mod:`authz.bindings` - the ``role:edit,resource:servers`` binding syntax
* :mod:`authz.engine` - :class:`Authorizer`, whose :meth:`~Authorizer.decide` is the one
  decision entry point, plus the token rules and the creator ceiling (``covers``)
* :mod:`authz.index` - the hot path, proven equal to Casbin's plain enforcer
* :mod:`authz.reference` - that plain enforcer, built over the same rules
* :mod:`authz.tokens` - McpToken and session token generation, hashing, comparison
* :mod:`authz.wire` - policy changes as JSON, for followers and other replicas
* :mod:`authz.lint`, :mod:`authz.decision_table` - the security team's tooling
"""

from authz.bindings import RoleBinding, parse_binding
from authz.engine import (
    Authorizer,
    Decision,
    Explanation,
    Missing,
    PolicyEvent,
    TokenGrant,
    get_authorizer,
    set_authorizer,
)
from authz.errors import AuthzError, BindingError, DecisionTableError, InvalidName, PolicyError
from authz.policy import Rule

__all__ = [
    "Authorizer",
    "AuthzError",
    "BindingError",
    "Decision",
    "DecisionTableError",
    "Explanation",
    "InvalidName",
    "Missing",
    "PolicyError",
    "PolicyEvent",
    "RoleBinding",
    "Rule",
    "TokenGrant",
    "get_authorizer",
    "parse_binding",
    "set_authorizer",
]
