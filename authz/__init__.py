"""mcpctl's policy engine: one Casbin model, one policy set, one decision function.

Everything about authorization lives here, with no web framework, HTTP client or MCP SDK:

* ``model.conf`` and ``policies/*.csv`` - the model and the policy files security teams own
* :mod:`authz.vocabulary` - subjects, resource kinds, verbs and naming rules
* :mod:`authz.bindings` - the ``role:edit,resource:servers`` binding syntax
* :mod:`authz.engine` - :class:`Authorizer`, whose :meth:`~Authorizer.decide` is the one
  decision entry point, with the token rules (a token never exceeds its creator, now)
* :mod:`authz.decision` - :class:`Decision` and how its reason names the deciding line
* :mod:`authz.ceiling` - the creator ceiling: ``covers`` lists what a granter lacks
* :mod:`authz.explain` - a decision with every matching line, for ``policy explain``
* :mod:`authz.index` - the hot path, proven equal to Casbin's plain enforcer
* :mod:`authz.reference` - that plain enforcer, built over the same rules
* :mod:`authz.tokens` - McpToken and session token generation, hashing, comparison
* :mod:`authz.wire` - policy changes as JSON, for followers and other replicas
* :mod:`authz.lint`, :mod:`authz.decision_table` - the security team's tooling (packages)
"""

from authz.bindings import RoleBinding, parse_binding
from authz.ceiling import Missing
from authz.decision import Decision
from authz.engine import Authorizer, PolicyEvent, TokenGrant
from authz.errors import AuthzError, BindingError, DecisionTableError, InvalidName, PolicyError
from authz.explain import Explanation
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
    "parse_binding",
]
