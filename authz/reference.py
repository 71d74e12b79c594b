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

from authz.errors import PolicyError
from authz.policy import Rule
from authz.vocabulary import tool_server

# The exact model the index implements (white space removed before comparing).
_INDEXED_SECTIONS = {
    ("r", "r"): "sub,proj,kind,name,act",
    ("p", "p"): "sub,proj,kind,name,act,eft",
    ("g", "g"): "_,_",
    ("g", "g2"): "_,_",
    ("e", "e"): "some(where(p_eft==allow))&&!some(where(p_eft==deny))",
    ("m", "m"): (
        'g(r_sub,p_sub)&&g2(r_act,p_act)&&(p_proj=="*"||p_proj==r_proj)'
        '&&(((p_kind=="*"||p_kind==r_kind)&&(p_name=="*"||p_name==r_name))'
        '||(r_kind=="tools"&&p_kind=="servers"&&(p_name=="*"||p_name==toolServer(r_name))))'
    ),
}

_WS = re.compile(r"\s+")

# Casbin logs every denied request at WARNING; that is our caller's job, not its.
logging.getLogger("casbin").setLevel(logging.ERROR)


def load_model(path: Path) -> casbin.model.Model:
    """Parse a Casbin model file, with a clear error when it cannot be parsed."""
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
    return model


def _value(model: casbin.model.Model, sec: str, key: str) -> str | None:
    if sec not in model.keys() or key not in model[sec]:
        return None
    return _WS.sub("", str(model[sec][key].value))


def model_differences(model: casbin.model.Model) -> list[str]:
    """How ``model`` differs from the model the index implements (empty: identical)."""
    diffs = []
    for (sec, key), want in _INDEXED_SECTIONS.items():
        got = _value(model, sec, key)
        if got != want:
            diffs.append(f"[{sec}] {key} is `{got}`, the index implements `{want}`")
    for sec in ("r", "p", "g", "e", "m"):
        if sec in model.keys():
            for key in model[sec]:
                if (sec, key) not in _INDEXED_SECTIONS:
                    diffs.append(f"[{sec}] {key} is not part of the indexed model")
    return diffs


def build_reference(model_path: Path, rules: Iterable[Rule]) -> Any:
    """A plain ``casbin.Enforcer`` holding ``rules`` in their order, as Casbin loads them."""
    model = load_model(model_path)
    enforcer = casbin.Enforcer(model)
    enforcer.add_function("toolServer", tool_server)
    for rule in rules:
        sec = "p" if rule.ptype == "p" else "g"
        if sec in model.keys() and rule.ptype in model[sec]:
            model[sec][rule.ptype].policy.append(list(rule.values))
    enforcer.build_role_links()
    return enforcer
