"""The reference: pycasbin's plain ``Enforcer`` over the same model and rules.

It scans every policy line per decision, so it is slow at scale; the index in
:mod:`authz.index` answers the hot path and is proven equal to this by the
differential test. The reference still decides whenever the model file is not the
one the index was built for (see :func:`model_differences`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import casbin
import casbin.model
from casbin.core_enforcer import CoreEnforcer
from casbin.effect import get_effector

from authz.errors import PolicyError
from authz.policy import Rule
from authz.vocabulary import tool_server

__all__ = ["build_reference", "check_rules_fit", "load_model", "model_differences", "tokens"]

# The exact model the index implements, compared token by token (string literals exactly).
_INDEXED_SECTIONS = {
    ("r", "r"): "sub, proj, kind, name, act",
    ("p", "p"): "sub, proj, kind, name, act, eft",
    ("g", "g"): "_, _",
    ("g", "g2"): "_, _",
    ("e", "e"): "some(where (p_eft == allow)) && !some(where (p_eft == deny))",
    ("m", "m"): (
        'g(r_sub, p_sub) && g2(r_act, p_act) && (p_proj == "*" || p_proj == r_proj)'
        ' && (((p_kind == "*" || p_kind == r_kind) && (p_name == "*" || p_name == r_name))'
        ' || ((r_kind == "tools" || r_kind == "prompts" || r_kind == "resources")'
        ' && p_kind == "servers"'
        ' && (p_name == "*" || p_name == toolServer(r_name))))'
    ),
}

# One token: a string literal (kept exactly, quotes and spaces inside included), a name or
# number, a two-character operator, or any other single character.
_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\w+|&&|\|\||==|!=|<=|>=|\S""")

# Casbin logs every denied request at WARNING; that is our caller's job, not its.
logging.getLogger("casbin").setLevel(logging.ERROR)


def tokens(text: str) -> list[str]:
    """``text`` as the tokens an expression is made of; white space between them is dropped."""
    return _TOKEN.findall(text)


def load_model(path: Path) -> casbin.model.Model:
    """Parse a Casbin model file; a clear error when it cannot be parsed or Casbin refuses it.

    Refused like Casbin refuses them: an effect Casbin has no effector for (e.g. written
    without its spaces), a matcher that is not an expression.
    """
    if not path.is_file():
        raise PolicyError(f"model file `{path}` does not exist")
    model = casbin.model.Model()
    try:
        model.load_model(str(path))
    except Exception as exc:  # casbin raises bare exceptions of several kinds
        raise PolicyError(f"cannot parse model: {exc}", source=str(path)) from exc
    for sec, key in (("r", "r"), ("p", "p"), ("e", "e"), ("m", "m")):
        if sec not in model.keys() or key not in model[sec]:
            raise PolicyError(f"model has no `{key}` in its [{sec}] section", source=str(path))
    effect = str(model["e"]["e"].value)
    try:
        get_effector(effect)
    except RuntimeError as exc:
        raise PolicyError(
            f"casbin refuses the policy effect `{effect}` ({exc}): write one of casbin's "
            "effects exactly, e.g. `some(where (p.eft == allow)) && !some(where (p.eft == deny))`",
            source=str(path),
        ) from exc
    matcher = str(model["m"]["m"].value)
    try:
        CoreEnforcer._get_expression(matcher)  # parses it, as casbin does per request
    except SyntaxError as exc:
        raise PolicyError(
            f"casbin cannot parse the matcher `{matcher}`: {exc.msg}", source=str(path)
        ) from exc
    return model


def _value(model: casbin.model.Model, sec: str, key: str) -> str | None:
    if sec not in model.keys() or key not in model[sec]:
        return None
    return str(model[sec][key].value)


def model_differences(model: casbin.model.Model) -> list[str]:
    """How ``model`` differs from the model the index implements (empty: identical).

    Compared token by token after Casbin's own parsing: ``p.proj == " * "`` differs from
    ``p.proj == "*"``, ``p.proj=="*"`` does not.
    """
    diffs = []
    for (sec, key), want in _INDEXED_SECTIONS.items():
        got = _value(model, sec, key)
        if got is None:
            diffs.append(f"[{sec}] has no `{key}`, the index implements `{want}`")
        elif tokens(got) != tokens(want):
            diffs.append(f"[{sec}] {key} is `{got}`, the index implements `{want}`")
    for sec in ("r", "p", "g", "e", "m"):
        if sec in model.keys():
            for key in model[sec]:
                if (sec, key) not in _INDEXED_SECTIONS:
                    diffs.append(f"[{sec}] {key} is not part of the indexed model")
    return diffs


def check_rules_fit(model: casbin.model.Model, rules: Iterable[Rule]) -> None:
    """Refuse a rule the model has no definition for, or whose values it cannot take."""
    arity: dict[str, int] = {}
    for sec in ("p", "g"):
        for key, ast in model[sec].items() if sec in model.keys() else ():
            arity[key] = len(ast.tokens) if sec == "p" else str(ast.value).count("_")
    for rule in rules:
        want = arity.get(rule.ptype)
        where = f" ({rule.source})" if rule.source else ""
        if want is None:
            raise PolicyError(
                f"policy line `{rule}`{where} is a `{rule.ptype}` line, and the model "
                f"defines no `{rule.ptype}`"
            )
        if want != len(rule.values):
            domains = " (the model has domains)" if rule.ptype != "p" and want > 2 else ""
            raise PolicyError(
                f"policy line `{rule}`{where} has {len(rule.values)} values, and the model's "
                f"`{rule.ptype}` takes {want}{domains}"
            )


def build_reference(model_path: Path, rules: Iterable[Rule]) -> Any:
    """A plain ``casbin.Enforcer`` holding ``rules`` in their order, as Casbin loads them."""
    model = load_model(model_path)
    rules = list(rules)
    check_rules_fit(model, rules)
    enforcer = casbin.Enforcer(model)
    enforcer.add_function("toolServer", tool_server)
    for rule in rules:
        sec = "p" if rule.ptype == "p" else "g"
        if sec in model.keys() and rule.ptype in model[sec]:
            model[sec][rule.ptype].policy.append(list(rule.values))
    enforcer.build_role_links()
    return enforcer
