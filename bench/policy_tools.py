"""Benchmark of the security team's tools: who-can, diff, lint and a 10,000-case policy test.

    .venv/bin/python bench/policy_tools.py [--quick]

Over a synthetic policy directory (the shipped files plus ``generated.csv``): 10k users in
200 groups (some nested), ~100k ``p`` lines - one group holding 20k of them - of the shipped
roles and operations over servers, tools and secrets in 50 projects, with some denies.

* ``load_s``: build an Authorizer from the directory (what each command does first)
* ``who_can_s``: ``who_can`` on a loaded Authorizer (median of 5 requests);
  ``who_can_cli_s`` the same plus the load, as ``mcpctl policy who-can`` runs
* ``can_i_list_s``: ``access_list`` (``can-i --list``) on a loaded Authorizer, median of 5
  subjects - one of them in the group holding 20k lines (what mcpd answers)
* ``diff_s``: ``diff`` of two such directories differing in 20 lines (loads included)
* ``lint_s``: ``lint`` of the directory
* ``test_s``: load and run a 10,000-case decision table against the directory
  (``test_shipped_s``: the same table against the shipped policy)

Each ``*_s`` is wall time; ``cpu`` holds the same keys in CPU seconds of this process
(``time.process_time``), the figure that stays put on a busy machine.

Progress goes to stderr; the last line of stdout is one JSON object with those keys plus
``policy_lines``, ``users`` and ``targets`` (the issue's limits, in seconds).
``--quick`` runs tiny sizes (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# As a script, this file's directory comes first on sys.path, and bench/authz.py would
# shadow the `authz` package. Drop the directory before importing.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from authz import Authorizer  # noqa: E402
from authz.access import access_list  # noqa: E402
from authz.decision_table import load_table  # noqa: E402
from authz.decision_table.run import build_world, run_cases  # noqa: E402
from authz.diff import diff  # noqa: E402
from authz.lint import lint  # noqa: E402
from authz.policy import default_model_path, default_policy_dir  # noqa: E402
from authz.whocan import who_can  # noqa: E402

SEED = 20261201
TARGETS = {"who_can_s": 1.0, "can_i_list_s": 1.0, "diff_s": 10.0, "lint_s": 5.0, "test_s": 1.5}
ROLES = ("role:view", "role:edit", "role:run")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(rng: random.Random, n_lines: int, n_users: int, big: int) -> list[str]:
    lines = []
    groups = [f"Group:t{i}" for i in range(200)]
    for i in range(n_users):
        for _ in range(rng.choice((1, 1, 2))):
            lines.append(f"g, User:u{i}, {rng.choice(groups)}")
    for i in range(0, 200, 10):  # some nesting
        lines.append(f"g, {groups[i]}, {groups[i + 5]}")
    lines.append(f"g, {groups[0]}, Group:big")
    for i in range(big):
        eft = "deny" if i % 97 == 0 else "allow"
        lines.append(f"p, Group:big, p{i % 50}, servers, s{i}, {ROLES[i % 3]}, {eft}")
    for _ in range(n_lines - big):
        sub = f"User:u{rng.randrange(n_users)}" if rng.random() < 0.8 else rng.choice(groups)
        proj = "*" if rng.random() < 0.2 else f"p{rng.randrange(50)}"
        kind = rng.choice(("servers", "servers", "tools", "secrets"))
        name = (
            "*"
            if rng.random() < 0.1
            else (
                f"s{rng.randrange(500)}__t{rng.randrange(5)}"
                if kind == "tools"
                else f"s{rng.randrange(500)}"
            )
        )
        eft = "deny" if rng.random() < 0.05 else "allow"
        lines.append(f"p, {sub}, {proj}, {kind}, {name}, {rng.choice(ROLES)}, {eft}")
    return lines


def write_dir(root: Path, name: str, lines: list[str]) -> Path:
    d = root / name
    d.mkdir()
    for f in default_policy_dir().glob("*.csv"):
        shutil.copy(f, d / f.name)
    (d / "generated.csv").write_text("\n".join(lines) + "\n")
    return d


def write_table(path: Path, rng: random.Random, n_cases: int, n_users: int) -> None:
    out = [
        "groups:",
        "  Group:devs: [User:tbl0, User:tbl1]",
        "bindings:",
        "  - subjects: [Group:devs]",
        "    roleBindings: ['role:view,resource:servers']",
        "cases:",
    ]
    for i in range(n_cases):
        user = f"User:u{rng.randrange(n_users)}" if i % 2 else f"User:tbl{i % 2}"
        out += [
            f"  - name: case {i}",
            f"    subject: {user}",
            f"    action: {rng.choice(('get', 'update', 'run'))}",
            "    kind: servers",
            f"    object: s{rng.randrange(500)}",
            f"    project: p{rng.randrange(50)}",
            f"    expect: {'allow' if user.startswith('User:tbl') else 'deny'}",
        ]
    path.write_text("\n".join(out) + "\n")


CPU: dict[str, float] = {}  # the last timed() call's CPU seconds, read by the caller


def timed(fn):  # type: ignore[no-untyped-def]
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    CPU["last"] = time.process_time() - cpu
    return time.perf_counter() - start, value


def run_test(table: Path, policy_dir: Path | None) -> tuple[int, int]:
    authorizer = Authorizer(policy_dir=policy_dir)  # as `mcpctl policy test` does
    t = load_table(table, authorizer=authorizer)
    result = run_cases(t, build_world(t, authorizer=authorizer))
    return len(result.results), len(result.failures)


def _member_of_big(lines: list[str]) -> str:
    """A user in Group:t0, which is in Group:big (the group with 20k lines)."""
    return next(ln.split(", ")[1] for ln in lines if ln.endswith(", Group:t0"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_lines, n_users, big, n_cases = (
        (2000, 300, 400, 300) if args.quick else (100_000, 10_000, 20_000, 10_000)
    )
    rng = random.Random(SEED)
    report: dict[str, object] = {"policy_lines": n_lines, "users": n_users}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = generate(rng, n_lines, n_users, big)
        old = write_dir(root, "old", lines)
        changed = list(lines)
        for i in rng.sample(range(len(changed)), 10):  # 10 lines removed, 10 added: 20 lines
            changed[i] = "# removed"
        for i in range(10):
            changed.append(f"p, User:u{i}, p{i}, servers, new{i}, role:edit, allow")
        new = write_dir(root, "new", changed)
        log(f"{len(lines)} generated lines in {old}")

        load_s, authorizer = timed(lambda: Authorizer(policy_dir=old))
        report["load_s"] = round(load_s, 3)
        cpu["load_s"] = round(CPU["last"], 3)
        log(f"load: {load_s:.2f}s (CPU {CPU['last']:.2f}s)")
        samples, cpus = [], []
        for verb, kind, name, proj in (
            ("get", "servers", "s1", "p1"),
            ("update", "servers", "s7", "p7"),
            ("run", "tools", "s3__t1", "p3"),
            ("get", "secrets", "s9", "p9"),
            ("list", "servers", "", "p2"),
        ):
            s, result = timed(lambda: who_can(authorizer, verb, kind, name, proj))  # noqa: B023
            samples.append(s)
            cpus.append(CPU["last"])
            log(f"who-can {verb} {kind}/{name} in {proj}: {len(result.allowed)} allowed, {s:.3f}s")
        report["who_can_s"] = round(statistics.median(samples), 3)
        cpu["who_can_s"] = round(statistics.median(cpus), 3)
        report["who_can_cli_s"] = round(load_s + statistics.median(samples), 3)
        samples, cpus = [], []
        lists: list[tuple[str, str | None]] = [  # Group:t0's members reach Group:big
            (_member_of_big(lines), None),
            ("User:u1", None),
            ("User:u2", "p2"),
            ("Group:t3", None),
            ("Group:big", "p4"),
        ]
        for subject, list_proj in lists:
            s, listed = timed(lambda: access_list(authorizer, subject, list_proj))  # noqa: B023
            samples.append(s)
            cpus.append(CPU["last"])
            log(f"can-i --list {subject} ({list_proj or 'every project'}): {len(listed.allowed)} "
                f"allowed, {len(listed.denied)} denied lines, {s:.3f}s")  # fmt: skip
        report["can_i_list_s"] = round(statistics.median(samples), 3)
        cpu["can_i_list_s"] = round(statistics.median(cpus), 3)

        diff_s, result = timed(lambda: diff(Authorizer(policy_dir=old), Authorizer(policy_dir=new)))
        report["diff_s"] = round(diff_s, 3)
        cpu["diff_s"] = round(CPU["last"], 3)
        log(f"diff: {len(result.gained)} gained, {len(result.lost)} lost, {diff_s:.2f}s "
            f"(CPU {CPU['last']:.2f}s)")  # fmt: skip

        lint_s, issues = timed(lambda: lint(old, default_model_path()))
        report["lint_s"] = round(lint_s, 3)
        cpu["lint_s"] = round(CPU["last"], 3)
        log(f"lint: {len(issues)} findings, {lint_s:.2f}s (CPU {CPU['last']:.2f}s)")

        table = root / "table.yaml"
        write_table(table, rng, n_cases, n_users)
        test_s, (n, failed) = timed(lambda: run_test(table, old))
        report["test_s"] = round(test_s, 3)
        cpu["test_s"] = round(CPU["last"], 3)
        log(f"test ({n} cases, {failed} failed) over the generated policy: {test_s:.2f}s "
            f"(CPU {CPU['last']:.2f}s)")  # fmt: skip
        shipped_s, _ = timed(lambda: run_test(table, None))
        report["test_shipped_s"] = round(shipped_s, 3)
        cpu["test_shipped_s"] = round(CPU["last"], 3)
        log(f"test over the shipped policy: {shipped_s:.2f}s")
    report["cpu"] = cpu
    report["targets"] = TARGETS
    print(json.dumps(report))


if __name__ == "__main__":
    main()
