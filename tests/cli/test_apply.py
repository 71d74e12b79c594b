"""mcpctl apply -f: ordering, idempotence, dry run and clear errors, against a real mcpd."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.cli.test_cli_flows import login, mcpctl


def _manifest(suffix: str, description: str = "first") -> str:
    return f"""
apiVersion: mcpctl/v1
kind: Project
metadata: {{name: web-{suffix}}}
spec: {{description: {description}, servers: [time-{suffix}]}}
---
kind: Server
metadata: {{name: time-{suffix}}}
spec:
  transport: stdio
  stdio: {{command: mcp-server-time, args: []}}
---
kind: RbacDefinition
metadata: {{name: devs-{suffix}}}
spec:
  subjects: ["Group:devs-{suffix}"]
  roleBindings: ["role:view,resource:servers,project:web-{suffix}"]
---
kind: Group
metadata: {{name: devs-{suffix}}}
spec: {{members: []}}
"""


def test_apply_creates_in_dependency_order_then_is_idempotent(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    login(cli_env)
    s = uuid.uuid4().hex[:8]
    f = tmp_path / "m.yaml"
    f.write_text(_manifest(s))
    code, out, err = mcpctl("apply", "-f", str(f), "--dry-run")
    assert code == 0, err
    assert all(line.endswith("created (dry run)") for line in out.splitlines())
    assert mcpctl("get", "project", f"web-{s}")[0] == 1  # dry run changed nothing
    code, out, err = mcpctl("apply", "-f", str(f))
    assert code == 0, err
    assert out.splitlines() == [
        f"group/devs-{s} created",
        f"server/time-{s} created",
        f"project/web-{s} created",
        f"rbacdefinition/devs-{s} created",
    ]
    code, out, _ = mcpctl("apply", "-f", str(f))
    assert all(line.endswith(" unchanged") for line in out.splitlines()), out
    f.write_text(_manifest(s, description="second"))
    code, out, _ = mcpctl("apply", "-f", "-", input=f.read_text())
    assert f"project/web-{s} configured" in out.splitlines()
    assert mcpctl("get", "project", f"web-{s}", "-o", "json")[1].count('"second"') == 1


def test_apply_rejects_bad_manifests_before_changing_anything(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    login(cli_env)
    s = uuid.uuid4().hex[:8]
    cases = {
        "kind: Widget\nmetadata: {name: x}\n": "kind `Widget` is unknown",
        "kind: Server\nspec: {}\n": "metadata.name is missing",
        "- a\n- b\n": "expected a mapping",
        "kind: Server\nmetadata: {name: a}\n---\nkind: Server\nmetadata: {name: a}\n": (
            "appears twice"
        ),
        "kind: Server\nmetadata: {name: a}\nextra: 1\n": "unknown top-level key(s) extra",
        "kind: [\n": "not valid YAML",
    }
    for text, message in cases.items():
        f = tmp_path / "bad.yaml"
        f.write_text(_manifest(s) + "---\n" + text if "twice" not in message else text)
        code, _, err = mcpctl("apply", "-f", str(f))
        assert code == 3, (text, err)
        assert message in err, (message, err)
    assert mcpctl("get", "project", f"web-{s}")[0] == 1
