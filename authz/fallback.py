"""Deciding with plain Casbin when the model is not the one the index implements.

:class:`Fallback` holds Casbin's plain enforcer over the rules (in policy order, each with
its ``file:line``). Casbin's ``enforce_ex`` decides; the lines a reason or ``explain``
cites are found by evaluating the model's matcher on each policy line, exactly as Casbin
does, so every line cited is a real line that matched - never one rebuilt from the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from casbin.core_enforcer import CoreEnforcer
from casbin.util.builtin_operators import generate_g_function

from authz.decision import Decision, rule_ref, target
from authz.errors import PolicyError
from authz.policy import ALLOW, DENY, Rule
from authz.reference import build_reference

__all__ = ["REQUEST_FIELDS", "Fallback"]

REQUEST_FIELDS = ("sub", "proj", "kind", "name", "act")


class Fallback:
    """Plain Casbin over ``rules``, and the matching lines behind its decisions."""

    def __init__(self, model_path: Path, rules: Iterable[Rule]) -> None:
        rules = list(rules)
        self.rules = [r for r in rules if r.ptype == "p"]
        self.enforcer: Any = build_reference(model_path, rules)
        model = self.enforcer.model
        self._r_tokens = list(model["r"]["r"].tokens)
        if len(self._r_tokens) != len(REQUEST_FIELDS):
            raise PolicyError(
                f"the model's request `r = {model['r']['r'].value}` has "
                f"{len(self._r_tokens)} values; mcpctl asks {len(REQUEST_FIELDS)} "
                f"({', '.join(REQUEST_FIELDS)})",
                source=str(model_path),
            )
        self._p_tokens = list(model["p"]["p"].tokens)
        functions = self.enforcer.fm.get_functions()
        for key, ast in model["g"].items() if "g" in model.keys() else ():  # noqa: SIM118
            functions[key] = generate_g_function(ast.rm)
        self._expression = CoreEnforcer._get_expression(str(model["m"]["m"].value), functions)

    def matching(self, request: tuple[str, ...]) -> list[Rule]:
        """Every ``p`` line whose matcher is true for ``request``, in policy order."""
        r_params = dict(zip(self._r_tokens, request, strict=True))
        out = []
        for rule in self.rules:
            params = dict(r_params)
            params.update(zip(self._p_tokens, rule.values, strict=False))
            result = self._expression.eval(params)
            if result is True or (isinstance(result, float) and result != 0):
                out.append(rule)
        return out

    def decide(self, request: tuple[str, ...]) -> Decision:
        """Casbin's decision, its reason citing the first matching line of the deciding kind."""
        allowed, _ = self.enforcer.enforce_ex(*request)
        lines = self.matching(request)
        if allowed:
            allow = next((r for r in lines if r.eft != DENY), None)
            if allow is None:
                return Decision(True, "allowed by the model's effect: no policy line matched")
            return Decision(True, f"allowed by {rule_ref(allow)}", allow)
        deny = next((r for r in lines if r.eft == DENY), None)
        if deny is not None:
            return Decision(False, f"denied by {rule_ref(deny)}", deny)
        if any(r.eft == ALLOW for r in lines):
            return Decision(False, "denied by the model's effect although an allow line matched")
        sub, proj, kind, name, act = request
        return Decision(False, f"no policy line allows {sub} to {act} {target(proj, kind, name)}")
