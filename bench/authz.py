"""Authorization benchmark: the fast path against plain Casbin, cold start, live updates.

    .venv/bin/python bench/authz.py [--quick]

Measures, over a synthetic population (10k users spread over nested groups, bindings of
the shipped roles and operations over kinds, names and projects, a few denies):

* decision latency (p50/p99, microseconds) of ``Authorizer.decide`` - the real facade
  over the index - and of the plain ``casbin.Enforcer`` (:func:`authz.reference.build_reference`)
  at 100, 10k and 100k stored ``p`` lines. Requests are distinct and each one comes from a
  user not asked about before, so no subject closure is cached (cache-cold); only the
  handful of verb closures are warm, as they always are in a running server.
* ``load_100k_s``: read the 100k-line policy from a SQLite file (``casbin_rule``, through
  :func:`mcpd.policystore.load_authorizer`) and build the Authorizer.
* ``update_ms``: ``Authorizer.apply(added=[binding])`` plus the first ``decide`` that sees
  it, on the 100k-line Authorizer (median).

Progress goes to stderr; the last line of stdout is one JSON object::

    {"results": [{"engine", "policy_lines", "users", "p50_us", "p99_us", "cpu_us",
                  "p50_cpu_us", "p99_cpu_us"}, ...],
     "load_100k_s": s, "load_100k_cpu_s": s, "update_ms": m}

(``cpu_us``: CPU per decision of the fast path, ``time.process_time`` over the run;
``p50_cpu_us``/``p99_cpu_us``: percentiles of each decision's own CPU time
(``time.thread_time_ns``), from a second pass over the same requests on a fresh
Authorizer (cache-cold again) - on a shared machine the wall p99 is mostly the time the
process waited for a core, this is what the decision itself cost. The reference rows have
none of these.)

``policy_lines`` counts the stored ``p`` lines (bindings and denies), the lines Casbin
scans per request. Every size also stores the same ``g`` lines placing the users in
groups (about 1.6 per user); the load measurement reads both kinds of rows.
``--quick`` runs tiny sizes (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# As a script, this file's directory comes first on sys.path, and this file is named
# authz.py: it would shadow the `authz` package. Drop the directory before importing.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import sqlalchemy as sa  # noqa: E402

from authz.engine import Authorizer  # noqa: E402
from authz.policy import Rule, default_model_path  # noqa: E402
from authz.reference import build_reference  # noqa: E402
from authz.vocabulary import KINDS  # noqa: E402
from mcpd.policystore import PolicyRuleRow, create_policy_table, load_authorizer  # noqa: E402

Request = tuple[str, str, str, str, str]

SEED = 20261124
OTHER_KINDS = tuple(k for k in KINDS if k not in ("servers", "tools"))
PART_KINDS = ("tools", "prompts", "resources")  # the parts of a server
VERBS = ("get", "list", "create", "update", "delete", "run")
ROLE_VERBS = {
    "role:view": ("get", "list"),
    "role:edit": ("get", "list", "create", "update", "delete"),
    "role:run": ("run",),
    "role:admin": (*VERBS, "logs", "audit", "backup", "restore", "impersonate"),
    "action:logs": ("logs",),
    "action:audit": ("audit",),
    "action:backup": ("backup",),
}
GRANTS = tuple(ROLE_VERBS)
GRANT_WEIGHTS = (40, 20, 25, 5, 5, 3, 2)
TARGET_P99_US = 50.0  # issue 18
TARGET_LOAD_S = 1.0
TARGET_UPDATE_MS = 5.0


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...]
    users: int
    groups: int
    projects: int
    servers: int
    objects: int
    samples: int  # requests timed per size on the fast path
    reference_samples: dict[int, int]  # requests timed per size on plain Casbin
    reference_budget_s: float  # skip a reference size whose estimate exceeds this
    updates: int
    load_repeats: int


FULL = Config(
    sizes=(100, 10_000, 100_000),
    users=10_000,
    groups=400,
    projects=40,
    servers=2_000,
    objects=5_000,
    samples=10_000,
    reference_samples={100: 2_000, 10_000: 200, 100_000: 20},
    reference_budget_s=90.0,
    updates=50,
    load_repeats=3,
)
QUICK = Config(
    sizes=(100, 1_000),
    users=500,
    groups=20,
    projects=5,
    servers=50,
    objects=100,
    samples=300,
    reference_samples={100: 50, 1_000: 20},
    reference_budget_s=10.0,
    updates=5,
    load_repeats=1,
)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Population:
    """Users in nested groups, and a generator of bindings and requests over them."""

    def __init__(self, cfg: Config, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.users = [f"User:u{i:05d}" for i in range(cfg.users)]
        self.teams = [f"Group:team-{j}" for j in range(cfg.groups)]
        self.depts = [f"Group:dept-{k}" for k in range(max(1, cfg.groups // 10))]
        self.projects = [f"project-{k}" for k in range(cfg.projects)]
        self.up: dict[str, list[str]] = {}
        members: list[Rule] = []
        for i, user in enumerate(self.users):
            groups = {self.teams[i % len(self.teams)]}
            while rng.random() < 0.4:
                groups.add(rng.choice(self.teams))
            for grp in sorted(groups):
                members.append(Rule("g", (user, grp), "bench"))
        for team in self.teams:
            if rng.random() < 0.7:
                members.append(Rule("g", (team, rng.choice(self.depts)), "bench"))
        for dept in self.depts:
            members.append(Rule("g", (dept, "Group:org"), "bench"))
        for user in rng.sample(self.users, 3):
            members.append(Rule("g", (user, "Group:admins"), "bench"))
        for rule in members:
            self.up.setdefault(rule.values[0], []).append(rule.values[1])
        self.memberships = members

    def closure(self, sub: str) -> list[str]:
        seen, stack = [sub], [sub]
        while stack:
            for parent in self.up.get(stack.pop(), ()):
                if parent not in seen:
                    seen.append(parent)
                    stack.append(parent)
        return seen

    def object_name(self, kind: str) -> str:
        rng = self.rng
        if kind == "servers":
            return f"srv-{rng.randrange(self.cfg.servers)}"
        if kind in PART_KINDS:  # named `<server>__<part>` (a resource by its URI)
            return f"srv-{rng.randrange(self.cfg.servers)}__{kind[:-1]}-{rng.randrange(20)}"
        return f"obj-{rng.randrange(self.cfg.objects)}"

    def binding(self) -> tuple[str, ...]:
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            sub = rng.choice(self.teams)
        elif r < 0.7:
            sub = rng.choice(self.depts)
        else:
            sub = rng.choice(self.users)
        grant = rng.choices(GRANTS, GRANT_WEIGHTS)[0]
        proj = "*" if rng.random() < 0.25 else rng.choice(self.projects)
        if grant.startswith("action:"):
            kind, name = "*", "*"
        else:
            r = rng.random()
            kind = (
                "servers"
                if r < 0.35
                else "tools"
                if r < 0.45
                else "*"
                if r < 0.6
                else rng.choice(OTHER_KINDS)
            )
            name = "*" if kind == "*" or rng.random() < 0.5 else self.object_name(kind)
        eft = "deny" if rng.random() < 0.04 else "allow"
        return (sub, proj, kind, name, grant, eft)

    def bindings(self, n: int) -> list[Rule]:
        seen: set[tuple[str, ...]] = set()
        out: list[Rule] = []
        while len(out) < n:
            values = self.binding()
            if values not in seen:
                seen.add(values)
                out.append(Rule("p", values, "bench"))
        return out

    def requests(self, lines: Sequence[Rule], n: int) -> list[Request]:
        """``n`` distinct requests, each by a user not used before (while users last).

        About half are aimed at a binding of one of the user's groups (so the answer is
        often yes), the rest are anything.
        """
        rng = self.rng
        by_sub: dict[str, list[Rule]] = {}
        for rule in lines:
            by_sub.setdefault(rule.values[0], []).append(rule)
        order = list(self.users)
        rng.shuffle(order)
        seen: set[Request] = set()
        out: list[Request] = []
        while len(out) < n:
            user = order[len(out) % len(order)]
            mine = [r for s in self.closure(user) for r in by_sub.get(s, ())]
            if mine and rng.random() < 0.5:
                _, proj, kind, name, grant, _ = rng.choice(mine).values
                if proj == "*":
                    proj = rng.choice(self.projects)
                if kind == "*":
                    kind = rng.choice(KINDS)
                if kind == "servers" and name != "*" and rng.random() < 0.3:
                    kind, name = "tools", f"{name}__tool-{rng.randrange(20)}"
                if name == "*":
                    name = self.object_name(kind)
                act = rng.choice(ROLE_VERBS[grant])
            else:
                proj = rng.choice([*self.projects, ""])
                kind = rng.choice(KINDS)
                name = "" if rng.random() < 0.1 else self.object_name(kind)
                act = rng.choice((*VERBS, "logs", "audit"))
            req = (user, proj, kind, name, act)
            if req not in seen:
                seen.add(req)
                out.append(req)
        return out


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    xs = sorted(samples_ns)

    def at(q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0

    return round(at(0.50), 2), round(at(0.99), 2)


def time_fast(authorizer: Authorizer, requests: Sequence[Request]) -> tuple[list[int], int, float]:
    """Wall samples (ns), how many were allowed, and CPU µs per decision over the run."""
    clock = time.perf_counter_ns
    decide = authorizer.decide
    samples: list[int] = []
    allowed = 0
    cpu = time.process_time()
    for req in requests:
        t0 = clock()
        d = decide(*req)
        samples.append(clock() - t0)
        allowed += d.allowed
    cpu_us = (time.process_time() - cpu) / max(1, len(requests)) * 1e6
    return samples, allowed, cpu_us


def time_fast_cpu(authorizer: Authorizer, requests: Sequence[Request]) -> list[int]:
    """Thread CPU time (ns) of each decision: waiting for a core does not count."""
    clock = time.thread_time_ns
    decide = authorizer.decide
    samples: list[int] = []
    for req in requests:
        t0 = clock()
        decide(*req)
        samples.append(clock() - t0)
    return samples


def time_reference(enforcer: Any, requests: Sequence[Request]) -> tuple[list[int], list[bool]]:
    clock = time.perf_counter_ns
    samples: list[int] = []
    answers: list[bool] = []
    for req in requests:
        t0 = clock()
        allowed, _ = enforcer.enforce_ex(*req)
        samples.append(clock() - t0)
        answers.append(bool(allowed))
    return samples, answers


def write_db(path: Path, rules: Sequence[Rule]) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    create_policy_table(engine)
    cols = ("v0", "v1", "v2", "v3", "v4", "v5")
    rows = [  # every row names every column: executemany takes its columns from row 1
        {
            "ptype": r.ptype,
            "origin": "bench",
            **{c: None for c in cols},
            **dict(zip(cols, r.values, strict=False)),
        }
        for r in rules
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(PolicyRuleRow), rows)
    engine.dispose()


def load_once(path: Path) -> tuple[float, int, float]:
    """Seconds to read every row of ``path`` and build the Authorizer; rules loaded; CPU s."""
    t0, c0 = time.perf_counter(), time.process_time()
    engine = sa.create_engine(f"sqlite:///{path}")
    authorizer = load_authorizer(engine)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return seconds, len(authorizer.rules()), cpu


def measure_load(path: Path, expected: int, repeats: int) -> tuple[float, float]:
    """Median load time and CPU, each in a fresh process (as mcpd starts)."""
    times: list[float] = []
    cpus: list[float] = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--load-only", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"load run failed:\n{proc.stderr}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if out["rules"] < expected:
            raise SystemExit(f"loaded {out['rules']} rules from {path}, expected {expected}+")
        times.append(float(out["seconds"]))
        cpus.append(float(out["cpu"]))
    return statistics.median(times), statistics.median(cpus)


def measure_updates(pop: Population, authorizer: Authorizer, n: int) -> dict[str, float]:
    """Median ms from apply() to the first decide that sees it, for three kinds of change."""
    rng = pop.rng
    out: dict[str, list[float]] = {"add_binding": [], "remove_binding": [], "add_member": []}
    clock = time.perf_counter
    for i in range(n):
        obj = f"bench-new-{i}"
        for _ in range(1000):  # a user of the population not allowed this yet
            user, proj = rng.choice(pop.users), rng.choice(pop.projects)
            req = (user, proj, "servers", obj, "run")
            before = authorizer.decide(*req)
            if not before.allowed and before.rule is None:  # denied for want of an allow
                break
        else:
            raise SystemExit("update check: found no request without a matching line")
        rule = Rule("p", (user, proj, "servers", obj, "role:run", "allow"), "bench")
        t0 = clock()
        authorizer.apply(added=[rule])
        seen = authorizer.decide(*req).allowed
        out["add_binding"].append((clock() - t0) * 1000)
        t0 = clock()
        authorizer.apply(removed=[rule])
        gone = not authorizer.decide(*req).allowed
        out["remove_binding"].append((clock() - t0) * 1000)
        # a membership change: the user joins a group that holds a binding
        group = f"Group:bench-new-{i}"
        authorizer.apply(added=[Rule("p", (group, *rule.values[1:]), "bench")])
        t0 = clock()
        authorizer.apply(added=[Rule("g", (user, group), "bench")])
        joined = authorizer.decide(*req).allowed
        out["add_member"].append((clock() - t0) * 1000)
        if not (seen and gone and joined):
            raise SystemExit(f"update check failed for {req}: {seen=} {gone=} {joined=}")
    return {k: statistics.median(v) for k, v in out.items()}


def run(cfg: Config, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    rng = random.Random(SEED)
    pop = Population(cfg, rng)
    say(
        f"population: {len(pop.users)} users, {len(pop.teams)} teams in {len(pop.depts)} "
        f"departments, {len(pop.memberships)} g lines (stored with every size)"
    )
    largest = max(cfg.sizes)
    all_lines = pop.bindings(largest)
    results: list[dict[str, Any]] = []
    per_line_ms: float | None = None  # reference cost per p line, to estimate larger sizes
    big: Authorizer | None = None
    big_stored: list[Rule] = []
    for size in cfg.sizes:
        lines = all_lines[:size]
        stored = pop.memberships + lines
        t0 = time.perf_counter()
        authorizer = Authorizer(stored=stored)
        say(f"[{size} lines] Authorizer built in {time.perf_counter() - t0:.2f}s")
        requests = pop.requests(lines, cfg.samples)
        for verb in (*VERBS, "logs", "audit"):  # warm code paths and the verb closures only
            authorizer.decide("User:warmup", "", "servers", "warmup", verb)
        samples, allowed, cpu_us = time_fast(authorizer, requests)
        p50, p99 = percentiles(samples)
        fresh = Authorizer(stored=stored)
        for verb in (*VERBS, "logs", "audit"):
            fresh.decide("User:warmup", "", "servers", "warmup", verb)
        cpu_p50, cpu_p99 = percentiles(time_fast_cpu(fresh, requests))
        del fresh
        say(
            f"[{size} lines] fast: {len(samples)} distinct cold requests "
            f"({allowed} allowed), p50 {p50} us, p99 {p99} us, CPU {cpu_us:.1f} us per decision"
            f" (each decision's CPU: p50 {cpu_p50} us, p99 {cpu_p99} us)"
        )
        results.append(
            {
                "engine": "fast",
                "policy_lines": size,
                "users": cfg.users,
                "p50_us": p50,
                "p99_us": p99,
                "cpu_us": round(cpu_us, 2),
                "p50_cpu_us": cpu_p50,
                "p99_cpu_us": cpu_p99,
            }
        )
        k = cfg.reference_samples.get(size, 0)
        if k and per_line_ms is not None and per_line_ms * size * k / 1000 > cfg.reference_budget_s:
            say(
                f"[{size} lines] reference: skipped (estimated "
                f"{per_line_ms * size * k / 1000:.0f}s for {k} requests)"
            )
        elif k:
            t0 = time.perf_counter()
            enforcer = build_reference(default_model_path(), authorizer.rules())
            say(f"[{size} lines] reference built in {time.perf_counter() - t0:.2f}s")
            for verb in (*VERBS, "logs", "audit"):  # warm up, as for the fast path
                enforcer.enforce_ex("User:warmup", "", "servers", "warmup", verb)
            sample = requests[:k]
            ref_samples, answers = time_reference(enforcer, sample)
            agree = sum(
                a == authorizer.decide(*r).allowed for a, r in zip(answers, sample, strict=True)
            )
            rp50, rp99 = percentiles(ref_samples)
            per_line_ms = statistics.median(ref_samples) / 1e6 / size
            say(
                f"[{size} lines] reference (plain casbin.Enforcer): {k} requests only "
                f"(the first {k} of the fast sample), p50 {rp50} us, p99 {rp99} us"
                f"{' (p99 of so few is about the max)' if k < 100 else ''}; "
                f"agrees with fast on {agree}/{k}"
            )
            if agree != k:  # the index must answer as plain Casbin does, or its speed means nothing
                raise SystemExit(f"[{size} lines] fast and reference disagree: {k - agree}/{k}")
            results.append(
                {
                    "engine": "reference",
                    "policy_lines": size,
                    "users": cfg.users,
                    "p50_us": rp50,
                    "p99_us": rp99,
                }
            )
            del enforcer
        if size == largest:
            big, big_stored = authorizer, stored
        else:
            del authorizer

    with tempfile.TemporaryDirectory(prefix="mcpctl-bench-") as tmp:
        db = Path(tmp) / "mcpd.db"
        t0 = time.perf_counter()
        write_db(db, big_stored)
        say(
            f"[load] wrote {len(big_stored)} rows ({largest} p + {len(pop.memberships)} g) to "
            f"SQLite {db.name} in {time.perf_counter() - t0:.1f}s (not timed)"
        )
        load_s, load_cpu = measure_load(db, len(big_stored), cfg.load_repeats)
        say(
            "[load] read rows + build Authorizer (mcpd.policystore.load_authorizer): "
            f"{load_s:.3f}s, CPU {load_cpu:.3f}s "
            f"(median of {cfg.load_repeats}, each in a fresh process)"
        )
        here_s, _, _ = load_once(db)
        say(f"[load] the same inside this process (bigger heap, more GC work): {here_s:.3f}s")

    assert big is not None
    updates = measure_updates(pop, big, cfg.updates)
    say(
        f"[update] on the {largest}-line Authorizer, median of {cfg.updates}: add binding "
        f"{updates['add_binding']:.3f} ms, remove binding {updates['remove_binding']:.3f} ms, "
        f"add group member {updates['add_member']:.3f} ms (apply + first decide)"
    )

    fast_big = next(r for r in results if r["engine"] == "fast" and r["policy_lines"] == largest)
    if not quick:
        say("targets:")
        say(
            f"  fast p99 at {largest} lines <= {TARGET_P99_US:.0f} us: {fast_big['p99_us']} us "
            f"-> {'met' if fast_big['p99_us'] <= TARGET_P99_US else 'NOT met'} "
            f"(each decision's CPU p99: {fast_big['p99_cpu_us']} us -> "
            f"{'met' if fast_big['p99_cpu_us'] <= TARGET_P99_US else 'NOT met'})"
        )
        say(
            f"  load of {largest} lines <= {TARGET_LOAD_S:.0f} s: {load_s:.3f} s "
            f"-> {'met' if load_s <= TARGET_LOAD_S else 'NOT met'}"
        )
        say(
            f"  incremental change <= {TARGET_UPDATE_MS:.0f} ms: {updates['add_binding']:.3f} ms "
            f"-> {'met' if updates['add_binding'] <= TARGET_UPDATE_MS else 'NOT met'}"
        )
    else:
        say(f"--quick: tiny sizes; load_100k_s is the load of {largest} lines")
    say(f"total {time.perf_counter() - started:.0f}s")
    return {
        "results": results,
        "load_100k_s": round(load_s, 3),
        "load_100k_cpu_s": round(load_cpu, 3),
        "update_ms": round(updates["add_binding"], 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)  # child of the load run
    args = parser.parse_args(argv)
    if args.load_only:
        seconds, rules, cpu = load_once(args.load_only)
        print(json.dumps({"seconds": seconds, "rules": rules, "cpu": cpu}), flush=True)
        return
    report = run(QUICK if args.quick else FULL, args.quick)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
