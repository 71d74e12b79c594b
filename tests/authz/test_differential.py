"""Differential test: :class:`authz.index.PolicyIndex` decides exactly like Casbin.

For many seeded-random policies and requests, ``PolicyIndex.match`` must agree with
pycasbin's plain ``Enforcer`` (:func:`authz.reference.build_reference`) over the same model
and rules: the same allow/deny, and for a deny by rule the same first deny line.

The policies are built to reach the corners of the model: nested groups with cycles and
chains deeper than Casbin's role hierarchy limit (10), roles that include roles (also in
cycles and chains), operations, allow and deny lines, ``*`` in project/kind/name, project
scopes, McpToken subjects, tools requests against server bindings, duplicate lines, and
incremental ``add``/``remove`` on a live index whose closure caches are warm.

A failure prints the seed, the request and the policy; to replay one policy, call
``_check_static(seed)`` or ``_check_incremental(seed)``. ``AUTHZ_DIFF_SEED`` changes the
base seed (to explore beyond the fixed seeds CI runs).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from authz.index import PolicyIndex
from authz.policy import Rule, default_model_path, default_policy_dir, load_policy_dir
from authz.reference import build_reference
from authz.vocabulary import KINDS, TOKENS_GROUP

BASE_SEED = int(os.environ.get("AUTHZ_DIFF_SEED", "20261124"))

# Sizes: the reference scans every p line per request and evaluates g() on each (a BFS):
# ~5-10 us per line here. So many small-to-medium policies: ~35 s in all (~80 s with
# coverage on) on 2 cores.
# Compared: STATIC_POLICIES * STATIC_REQUESTS
#         + INCREMENTAL_POLICIES * (INCREMENTAL_ROUNDS + 1) * INCREMENTAL_REQUESTS >= 100k.
STATIC_POLICIES = 100
STATIC_REQUESTS = 700
INCREMENTAL_POLICIES = 40
INCREMENTAL_ROUNDS = 8
INCREMENTAL_REQUESTS = 100  # per round (and once before the first change)
MIN_COMPARED = 100_000

Request = tuple[str, str, str, str, str]

PROJECTS = ("alpha", "beta", "gamma")
UNKNOWN_PROJECT = "zeta"
SERVERS = ("github", "slack", "fs")
TOOLS = (
    "github__create_issue",
    "github__list_prs",
    "slack__post",
    "fs__read",
    "fs__read__deep",  # the first "__" is the boundary: server fs
    "web__get",  # a server no line names
)
PROMPTS = ("github__triage", "fs__summarize__deep", "web__ask")
RESOURCES = ("fs__file:///notes.txt", "github__repo://a/b?x=1", "fs__file:///a__b", "web__x:y")
PARTS = {"tools": TOOLS, "prompts": PROMPTS, "resources": RESOURCES}  # SERVER_PARTS' names
NAMES = ("a", "b", "web", "github", "fs", "User:u0")
VERBS = ("get", "list", "create", "update", "delete", "run")
OP_VERBS = ("logs", "audit", "backup", "restore", "impersonate")
SHIPPED_ROLES = ("role:view", "role:edit", "role:run", "role:admin")
SHIPPED_OPS = tuple(f"action:{v}" for v in OP_VERBS)

_SHIPPED: list[Rule] | None = None


def shipped_rules() -> list[Rule]:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = load_policy_dir(default_policy_dir())
    return list(_SHIPPED)


def token(rng: random.Random) -> str:
    return f"McpToken:{rng.getrandbits(256):064x}"


@dataclass
class Vocab:
    """The names one random policy draws from (and requests are drawn from)."""

    users: list[str]
    groups: list[str]
    tokens: list[str]
    chain: list[str]  # Group:c0 -> Group:c1 -> ... (deeper than the hierarchy limit)
    roles: list[str]  # custom roles and operations defined by g2
    role_chain: list[str]  # role:d0 -> role:d1 -> ... (deeper than the limit)
    shipped: bool
    acts: list[str] = field(default_factory=list)  # every act a p line may name

    @property
    def subjects(self) -> list[str]:
        return self.users + self.groups + self.tokens + self.chain


def p(*values: str) -> Rule:
    return Rule("p", values, "test")


def g(member: str, group: str) -> Rule:
    return Rule("g", (member, group), "test")


def g2(member: str, role: str) -> Rule:
    return Rule("g2", (member, role), "test")


def make_vocab(rng: random.Random) -> Vocab:
    shipped = rng.random() < 0.7
    users = [f"User:u{i}" for i in range(rng.randint(2, 14))]
    groups = [f"Group:g{i}" for i in range(rng.randint(1, 9))]
    tokens = [token(rng) for _ in range(rng.randint(0, 3))]
    chain = [f"Group:c{i}" for i in range(rng.randint(9, 15))] if rng.random() < 0.5 else []
    roles = [f"role:r{i}" for i in range(rng.randint(0, 5))]
    roles += [f"action:x{i}" for i in range(rng.randint(0, 2))]
    role_chain = [f"role:d{i}" for i in range(rng.randint(9, 14))] if rng.random() < 0.4 else []
    v = Vocab(users, groups, tokens, chain, roles, role_chain, shipped)
    v.acts = list(roles) + list(role_chain) + list(VERBS) + list(OP_VERBS)
    if shipped:
        v.acts += list(SHIPPED_ROLES) + list(SHIPPED_OPS)
    return v


def random_g(rng: random.Random, v: Vocab) -> Rule:
    """One membership line: users and tokens into groups, groups into groups (cycles too)."""
    groups = v.groups + v.chain + ([TOKENS_GROUP] if v.shipped else [])
    r = rng.random()
    if r < 0.45 and v.users:
        return g(rng.choice(v.users), rng.choice(groups))
    if r < 0.55 and v.tokens:
        return g(rng.choice(v.tokens), rng.choice(groups))
    if r < 0.65 and v.chain:  # a shortcut (or a back edge) along the deep chain
        i, j = rng.randrange(len(v.chain)), rng.randrange(len(v.chain))
        return g(v.chain[i], v.chain[j])
    if r < 0.7:  # a group member that no request asks about
        return g(f"User:other{rng.randrange(3)}", rng.choice(groups))
    return g(rng.choice(v.groups + v.chain), rng.choice(groups))


def random_g2(rng: random.Random, v: Vocab) -> Rule:
    """One role line: verbs into roles, roles into roles (cycles too)."""
    roles = v.roles + v.role_chain + (list(SHIPPED_ROLES) if v.shipped else [])
    if not roles:
        roles = ["role:solo"]
    r = rng.random()
    if r < 0.55:
        return g2(rng.choice(VERBS + OP_VERBS), rng.choice(roles))
    if r < 0.65 and v.role_chain:
        i, j = rng.randrange(len(v.role_chain)), rng.randrange(len(v.role_chain))
        return g2(v.role_chain[i], v.role_chain[j])
    members = roles + (list(SHIPPED_OPS) if v.shipped else [])
    return g2(rng.choice(members), rng.choice(roles))


def random_object(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.15:
        kind = "*"
    elif r < 0.45:
        kind = "servers"
    elif r < 0.55:
        kind = rng.choice(("tools", "tools", "prompts", "resources"))
    else:
        kind = rng.choice(KINDS)
    if rng.random() < 0.4:
        return kind, "*"
    if kind == "servers":
        return kind, rng.choice((*SERVERS, "web"))
    if kind in PARTS:
        return kind, rng.choice(PARTS[kind])
    return kind, rng.choice(NAMES + SERVERS)


def random_p(rng: random.Random, v: Vocab) -> Rule:
    r = rng.random()
    if r < 0.35 and v.groups:
        sub = rng.choice(v.groups)
    elif r < 0.6:
        sub = rng.choice(v.users)
    elif r < 0.7 and v.tokens:
        sub = rng.choice(v.tokens)
    elif r < 0.82 and v.chain:
        sub = rng.choice(v.chain[6:])  # around the hierarchy limit
    elif r < 0.9 and v.shipped:
        sub = TOKENS_GROUP
    elif r < 0.93:
        sub = "User:ghost"  # a subject no request uses
    else:
        sub = rng.choice(v.subjects)
    proj = "*" if rng.random() < 0.4 else rng.choice(PROJECTS)
    kind, name = random_object(rng)
    if v.role_chain and rng.random() < 0.15:
        act = rng.choice(v.role_chain[6:])
    else:
        act = rng.choice(v.acts)
    eft = "deny" if rng.random() < 0.22 else "allow"
    return p(sub, proj, kind, name, act, eft)


def make_policy(rng: random.Random, n_p: int) -> tuple[Vocab, list[Rule]]:
    """A random policy: shipped files (maybe) first, then generated lines in random order."""
    v = make_vocab(rng)
    generated: list[Rule] = []
    # memberships
    for u in v.users:
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
            generated.append(g(u, rng.choice(v.groups)))
    for t in v.tokens:
        if v.shipped:
            generated.append(g(t, TOKENS_GROUP))
        if rng.random() < 0.5:
            generated.append(g(t, rng.choice(v.groups)))
    for grp in v.groups:
        for _ in range(rng.choice((0, 0, 1, 2))):
            generated.append(g(grp, rng.choice(v.groups + v.chain)))  # nesting, cycles
    if v.chain:
        generated += [g(a, b) for a, b in itertools.pairwise(v.chain)]
        generated.append(g(rng.choice(v.users), v.chain[0]))
        if rng.random() < 0.5:  # close the chain into a cycle
            generated.append(g(v.chain[-1], v.chain[0]))
    generated += [random_g(rng, v) for _ in range(rng.randint(0, 6))]
    # roles
    if not v.shipped:
        generated += [g2(verb, "role:view") for verb in ("get", "list")]
    for role in v.roles:
        for _ in range(rng.randint(1, 3)):
            generated.append(g2(rng.choice(VERBS + OP_VERBS), role))
    if v.role_chain:
        generated.append(g2(rng.choice(VERBS), v.role_chain[0]))
        generated += [g2(a, b) for a, b in itertools.pairwise(v.role_chain)]
        if rng.random() < 0.5:
            generated.append(g2(v.role_chain[-1], v.role_chain[0]))
    generated += [random_g2(rng, v) for _ in range(rng.randint(0, 6))]
    # bindings
    generated += [random_p(rng, v) for _ in range(n_p)]
    # duplicate lines
    for _ in range(rng.randint(0, max(1, len(generated) // 12))):
        generated.append(rng.choice(generated))
    rng.shuffle(generated)
    rules = (shipped_rules() if v.shipped else []) + generated
    return v, rules


class Graphs:
    """Downward views of a rule list (group -> members, role -> members) to aim requests."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.down: dict[str, dict[str, list[str]]] = {"g": {}, "g2": {}}
        self.p_rules: list[Rule] = []
        for rule in rules:
            if rule.ptype == "p":
                self.p_rules.append(rule)
            else:
                self.down[rule.ptype].setdefault(rule.values[1], []).append(rule.values[0])

    def walk_down(self, rng: random.Random, ptype: str, start: str, steps: int) -> str:
        node = start
        for _ in range(steps):
            below = self.down[ptype].get(node)
            if not below:
                break
            node = rng.choice(below)
        return node


def random_request(rng: random.Random, v: Vocab, graphs: Graphs) -> Request:
    """Half aimed at a p line (a member of its subject, a verb of its act), half anything."""
    if graphs.p_rules and rng.random() < 0.55:
        sub, proj, kind, name, act, _ = rng.choice(graphs.p_rules).values
        sub = graphs.walk_down(rng, "g", sub, rng.choice((0, 1, 2, 3, 8, 9, 10, 11, 14)))
        act = graphs.walk_down(rng, "g2", act, rng.choice((0, 1, 2, 3, 9, 10, 12)))
        if proj == "*" or rng.random() < 0.1:
            proj = rng.choice((*PROJECTS, "", "*"))
        if kind == "servers" and rng.random() < 0.4:
            kind = rng.choice(("tools", "tools", "prompts", "resources"))
            name = rng.choice(PARTS[kind]) if name == "*" else f"{name}__part{rng.randrange(2)}"
        elif kind == "*" or rng.random() < 0.1:
            kind = rng.choice((*KINDS, "*"))
        if (name == "*" and rng.random() < 0.8) or rng.random() < 0.1:
            name = rng.choice(PARTS[kind] if kind in PARTS else NAMES + SERVERS + ("", "*"))
        return sub, proj, kind, name, act
    r = rng.random()
    if r < 0.8:
        sub = rng.choice(v.subjects)
    elif r < 0.9:
        sub = token(rng)  # an unknown token
    else:
        sub = rng.choice(("User:nobody", "Group:nobody", "User:ghost", TOKENS_GROUP))
    proj = rng.choice((*PROJECTS, "", "*", UNKNOWN_PROJECT))
    kind = rng.choice((*KINDS, "*", "tools", "tools", "prompts", "resources", "servers"))
    if kind in PARTS:
        name = rng.choice((*PARTS[kind], "*", "", "nope", "__x", "*__x"))
    else:
        name = rng.choice(NAMES + SERVERS + ("", "*"))
    act = rng.choice([*v.acts, "frobnicate"])
    return sub, proj, kind, name, act


def describe(rules: Sequence[Rule]) -> str:
    return "\n".join(f"  {rule}" for rule in rules)


class Mismatch(Exception):
    """The index and the reference disagree (the message says where and on what)."""


def compare(
    where: str,
    index: PolicyIndex,
    reference: Any,
    rules: Sequence[Rule],
    requests: Iterable[Request],
) -> int:
    """Compare every request; the first mismatch raises with seed, request and policy."""
    n = 0
    for req in requests:
        m = index.match(*req)
        allowed, explain = reference.enforce_ex(*req)
        got_deny = list(m.deny.values) if m.deny is not None else []
        if m.allowed != allowed or got_deny != list(explain) or (allowed and m.allow is None):
            raise Mismatch(
                f"PolicyIndex disagrees with casbin.Enforcer ({where})\n"
                f"request: {req!r}\n"
                f"index:     allowed={m.allowed} allow={m.allow} deny={m.deny}\n"
                f"reference: allowed={allowed} explain={list(explain)}\n"
                f"subjects (index): {m.subjects}\nacts (index): {m.acts}\n"
                f"policy ({len(rules)} lines, in order):\n{describe(rules)}"
            )
        n += 1
    return n


def _check_static(seed: int, n_requests: int = STATIC_REQUESTS) -> int:
    rng = random.Random(seed)
    vocab, rules = make_policy(rng, rng.choice((5, 10, 15, 25, 35, 50, 75, 120)))
    index = PolicyIndex(rules)
    reference = build_reference(default_model_path(), rules)
    graphs = Graphs(rules)
    requests = [random_request(rng, vocab, graphs) for _ in range(n_requests)]
    return compare(f"static, seed={seed}", index, reference, rules, requests)


def _change(rng: random.Random, v: Vocab, current: list[Rule]) -> tuple[str, Rule]:
    r = rng.random()
    if r < 0.45 or not current:
        kind = rng.random()
        rule = (
            random_p(rng, v)
            if kind < 0.55
            else random_g(rng, v)
            if kind < 0.85
            else random_g2(rng, v)
        )
        return "add", rule
    if r < 0.55:
        return "add", rng.choice(current)  # a duplicate
    if r < 0.93:
        return "remove", rng.choice(current)
    return "remove", random_p(rng, v)  # most likely absent


def _check_incremental(seed: int) -> int:
    """Add and remove rules on a live, warm index; compare with a freshly built reference."""
    rng = random.Random(seed)
    vocab, current = make_policy(rng, rng.choice((10, 20, 35, 50)))
    index = PolicyIndex(current)
    model = default_model_path()
    n = 0
    for rnd in range(INCREMENTAL_ROUNDS + 1):
        log: list[str] = []
        if rnd:
            for _ in range(rng.randint(1, 8)):
                batch = [_change(rng, vocab, current) for _ in range(rng.choice((1, 1, 1, 3)))]
                adds = [rule for op, rule in batch if op == "add"]
                removes = [rule for op, rule in batch if op == "remove"]
                present = []
                for rule in removes:  # the index removes one occurrence of each, in order
                    if rule in current:
                        current.remove(rule)  # the first occurrence, as Casbin does
                        present.append(rule)
                removed = index.remove(removes)
                if removed != present:
                    raise Mismatch(f"seed={seed}: remove returned {removed}, not {present}")
                index.add(adds)
                current.extend(adds)
                log += [f"remove {r}" for r in removes] + [f"add {r}" for r in adds]
            if len(index) != len(current):
                raise Mismatch(f"seed={seed}: len(index) {len(index)} != {len(current)} rules")
        reference = build_reference(model, current)
        graphs = Graphs(current)
        requests = [random_request(rng, vocab, graphs) for _ in range(INCREMENTAL_REQUESTS)]
        where = f"incremental, seed={seed}, round {rnd}; last changes: {log}"
        n += compare(where, index, reference, current, requests)
    return n


def _run_block(kind: str, seeds: list[int]) -> tuple[int, str | None]:
    """Check a block of seeds (in a worker process): requests compared, first mismatch."""
    check = _check_static if kind == "static" else _check_incremental
    n = 0
    for seed in seeds:
        try:
            n += check(seed)
        except Mismatch as exc:
            return n, f"{exc}\nreplay: tests.authz.test_differential._check_{kind}({seed})"
    return n, None


@pytest.mark.timeout(300)
def test_index_agrees_with_casbin_on_random_policies() -> None:
    """The seeds run on every core (the reference is the slow part); any mismatch fails."""
    start = time.perf_counter()
    blocks = [
        ("static", [BASE_SEED * 1000 + i for i in range(j, STATIC_POLICIES, 10)]) for j in range(10)
    ] + [
        ("incremental", [BASE_SEED * 1000 + 500 + i for i in range(j, INCREMENTAL_POLICIES, 5)])
        for j in range(5)
    ]
    workers = min(4, os.cpu_count() or 1)
    counts = {"static": 0, "incremental": 0}
    failures: list[str] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for (kind, _), (n, failure) in zip(
            blocks, pool.map(_run_block, *zip(*blocks, strict=True)), strict=True
        ):
            counts[kind] += n
            if failure:
                failures.append(failure)
    if failures:
        pytest.fail(f"{len(failures)} block(s) disagree; the first:\n{failures[0]}", pytrace=False)
    static, incremental = counts["static"], counts["incremental"]
    total = static + incremental
    elapsed = time.perf_counter() - start
    print(
        f"compared {total} requests ({static} static, {incremental} incremental) "
        f"in {elapsed:.1f}s on {workers} processes"
    )
    assert incremental >= 30_000
    assert total >= MIN_COMPARED


# -- targeted cases (the corners the random test relies on, spelled out) ---------------


def _agree(rules: list[Rule], requests: list[Request]) -> None:
    index, reference = PolicyIndex(rules), build_reference(default_model_path(), rules)
    try:
        compare("targeted", index, reference, rules, requests)
    except Mismatch as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.parametrize("depth", range(7, 13))
def test_group_chain_at_the_hierarchy_limit(depth: int) -> None:
    chain = [f"Group:c{i}" for i in range(depth)]
    rules = [g("User:u", chain[0])] + [g(a, b) for a, b in itertools.pairwise(chain)]
    rules += [g2("get", "role:view"), p(chain[-1], "*", "*", "*", "role:view", "allow")]
    _agree(rules, [("User:u", "p", "servers", "x", "get"), (chain[0], "", "*", "*", "get")])


@pytest.mark.parametrize("depth", range(7, 13))
def test_role_chain_at_the_hierarchy_limit(depth: int) -> None:
    roles = [f"role:d{i}" for i in range(depth)]
    rules = [g2("get", roles[0])] + [g2(a, b) for a, b in itertools.pairwise(roles)]
    rules += [p("User:u", "*", "*", "*", roles[-1], "allow")]
    _agree(rules, [("User:u", "p", "servers", "x", "get"), ("User:u", "p", "x", "y", roles[0])])


@pytest.mark.parametrize("kind", ["tools", "prompts", "resources"])
def test_server_parts_against_server_bindings(kind: str) -> None:
    """A line on servers/NAME covers every tool, prompt and resource of that server."""
    rules = [
        g2("run", "role:run"),
        p("User:u", "*", "servers", "github", "role:run", "allow"),
        p("User:u", "p", "servers", "*", "role:run", "allow"),
        p("User:u", "*", kind, "fs__read", "role:run", "allow"),
        p("User:u", "*", "servers", "fs", "run", "deny"),
        p("User:u", "*", kind, "github__file:///secret", "run", "deny"),
    ]
    names = ["github__x", "github__a__b", "fs__read", "fs__write", "x__y", "*", "", "__x", "*__x"]
    names += ["github__file:///secret", "github__file:///open", "fs__file:///x"]
    asked = [("User:u", proj, kind, n, "run") for n in names for proj in ("", "p", "*")]
    _agree(rules, asked)
    idx = PolicyIndex(rules)
    assert idx.match("User:u", "", kind, "github__file:///open", "run").allow is not None
    assert idx.match("User:u", "", kind, "github__file:///secret", "run").deny is not None


def test_incremental_changes_with_warm_caches() -> None:
    rules = [g("User:u", "Group:a"), g2("get", "role:view")]
    rules += [p("Group:b", "*", "*", "*", "role:view", "allow")]
    index = PolicyIndex(rules)
    req: Request = ("User:u", "", "servers", "x", "get")
    assert not index.match(*req).allowed
    index.add([g("Group:a", "Group:b")])
    assert index.match(*req).allowed
    index.add([g("Group:a", "Group:b")])  # a duplicate link
    index.remove([g("Group:a", "Group:b")])
    assert index.match(*req).allowed  # one occurrence is left, as in the rebuilt reference
    index.remove([g("Group:a", "Group:b")])
    assert not index.match(*req).allowed
    index.add([g2("get", "role:x"), p("User:u", "*", "*", "*", "role:x", "deny")])
    index.add([g("Group:a", "Group:b")])
    assert index.match(*req).deny == p("User:u", "*", "*", "*", "role:x", "deny")
    index.remove([g2("get", "role:x")])
    assert index.match(*req).allowed


@pytest.mark.timeout(120)
def test_revocations_stick_while_readers_fill_the_caches() -> None:
    """Readers take no lock: a writer must not miss (or trip over) closures they cache.

    Regression: ``_invalidate`` iterated the closure cache while readers inserted into
    it ("dictionary changed size during iteration"), so a revoked membership stayed in
    the cached closure and the user stayed allowed; readers iterating a node's parents
    while a writer added one failed the same way.
    """
    n = 60_000
    rules = [g(f"User:u{i}", f"Group:g{i % 50}") for i in range(n)]
    rules += [g(f"Group:g{j}", "Group:hub") for j in range(50)]
    rules += [g2("get", "role:view"), p("Group:g1", "*", "*", "*", "role:view", "allow")]
    index = PolicyIndex(rules)
    for i in range(n // 2):  # a warm cache, as in a running server
        index.subjects_of(f"User:u{i}")
    stop = threading.Event()
    reader_errors: list[BaseException] = []

    def reader() -> None:
        i = n // 2
        while not stop.is_set():
            try:
                index.match(f"User:u{i}", "", "servers", "x", "get")
            except Exception as exc:  # a failing reader is a wrong deny
                reader_errors.append(exc)
            i = i + 1 if i < n - 1 else n // 2

    thread = threading.Thread(target=reader)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: make the races likely
    thread.start()
    try:
        for k in range(40):
            victim = f"User:u{1 + 50 * k}"  # a member of Group:g1, its closure cached
            assert index.match(victim, "", "servers", "x", "get").allowed
            index.add([g("Group:hub", f"Group:extra{k}")])  # a parent of every closure
            index.remove([g(victim, "Group:g1")])
            assert not index.match(victim, "", "servers", "x", "get").allowed, victim
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert not reader_errors, reader_errors[:3]


# -- edited models: the index runs only on the very model it implements ----------------

_SHIPPED_MODEL = default_model_path().read_text()
_MATCHER_STAR = '(p.proj == "*" || p.proj == r.proj)'

# (name, model text, indexed?) - every one must decide exactly like casbin.Enforcer.
EDITED_MODELS = [
    ("squeezed", _SHIPPED_MODEL.replace(_MATCHER_STAR, '( p.proj=="*" || p.proj==r.proj )'), True),
    (
        "spaced-literal",
        _SHIPPED_MODEL.replace(_MATCHER_STAR, '(p.proj == " * " || p.proj == r.proj)'),
        False,
    ),
    (
        "single-quotes",
        _SHIPPED_MODEL.replace(_MATCHER_STAR, "(p.proj == '*' || p.proj == r.proj)"),
        False,
    ),
    ("no-project-wildcard", _SHIPPED_MODEL.replace(_MATCHER_STAR, "(p.proj == r.proj)"), False),
    (
        "allow-override",
        _SHIPPED_MODEL.replace(
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
            "e = some(where (p.eft == allow))",
        ),
        False,
    ),
    (
        "swapped-g",
        _SHIPPED_MODEL.replace(
            "g(r.sub, p.sub) && g2(r.act, p.act)", "g2(r.act, p.act) && g(r.sub, p.sub)"
        ),
        False,
    ),
]


def _edited_case(model_text: str, seed: int, n_requests: int) -> tuple[int, bool]:
    import tempfile
    from pathlib import Path

    from authz.decision import request_problem
    from authz.engine import Authorizer

    rng = random.Random(seed)
    vocab, rules = make_policy(rng, rng.choice((10, 25, 50)))
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(model_text)
        pdir = Path(tmp) / "policies"
        pdir.mkdir()
        (pdir / "empty.csv").write_text("# nothing\n")
        stored = [Rule(r.ptype, r.values, f"db:test#{i}") for i, r in enumerate(rules)]
        authorizer = Authorizer(model_path=model, policy_dir=pdir, stored=stored)
        reference = build_reference(model, stored)
        graphs = Graphs(rules)
        n = 0
        for _ in range(n_requests):
            req = random_request(rng, vocab, graphs)
            if req[0].startswith("McpToken:") or request_problem(*req):
                continue
            d = authorizer.decide(*req)
            want = reference.enforce(*req)
            assert d.allowed == want, f"seed={seed} {req}: {d} but casbin says {want}"
            if d.rule is not None:  # the line cited is a real one, that matched
                assert d.rule.source.startswith("db:test#"), d
                assert d.rule in stored
            if not authorizer.indexed:
                e = authorizer.explain(*req)
                for line in (*e.allows, *e.denies):
                    assert line.source.startswith("db:test#")
                if d.allowed and d.rule is not None:
                    assert d.rule == e.allows[0]
            n += 1
        return n, authorizer.indexed


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("label", "text", "indexed"), EDITED_MODELS, ids=[m[0] for m in EDITED_MODELS]
)
def test_edited_models_decide_like_casbin(label: str, text: str, indexed: bool) -> None:
    assert text != _SHIPPED_MODEL
    total = 0
    for i in range(6):
        n, was_indexed = _edited_case(text, BASE_SEED * 7 + i, 120)
        assert was_indexed is indexed, label
        total += n
    assert total > 300


def test_spaced_literal_finds_the_wrong_allows_the_old_check_gave() -> None:
    """`p.proj == " * "` is another model: the index would allow what casbin denies."""
    import tempfile
    from pathlib import Path

    from authz.engine import Authorizer

    text = EDITED_MODELS[1][1]
    rules = [
        g2("get", "role:view"),
        Rule("p", ("User:u", "*", "*", "*", "role:view", "allow"), "db:x#1"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(text)
        pdir = Path(tmp) / "p"
        pdir.mkdir()
        (pdir / "a.csv").write_text("\n")
        a = Authorizer(model_path=model, policy_dir=pdir, stored=rules)
        assert not a.indexed
        assert not a.decide("User:u", "web", "servers", "x", "get").allowed
        assert PolicyIndex(rules).match("User:u", "web", "servers", "x", "get").allowed


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (  # casbin turns `||` into `or` without spaces: `"*"orp_proj` is no expression
            _MATCHER_STAR,
            '(p.proj=="*"||p.proj==r.proj)',
            "casbin cannot parse the matcher",
        ),
        (
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
            "e = some(where(p.eft==allow))&&!some(where(p.eft==deny))",
            "casbin refuses the policy effect",
        ),
    ],
)
def test_models_casbin_refuses_are_refused(old: str, new: str, message: str) -> None:
    import tempfile
    from pathlib import Path

    from authz.engine import Authorizer
    from authz.errors import PolicyError

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(_SHIPPED_MODEL.replace(old, new))
        with pytest.raises(PolicyError, match=message):
            Authorizer(model_path=model)


def test_a_g_line_under_a_model_with_domains_is_a_clear_error() -> None:
    import tempfile
    from pathlib import Path

    from authz.engine import Authorizer
    from authz.errors import PolicyError

    text = _SHIPPED_MODEL.replace("g = _, _\n", "g = _, _, _\n").replace(
        "g(r.sub, p.sub)", "g(r.sub, p.sub, r.proj)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(text)
        with pytest.raises(PolicyError, match=r"has 2 values, and the model's `g` takes 3"):
            Authorizer(model_path=model, stored=[g("User:a", "Group:b")])
