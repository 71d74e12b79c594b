# syntax=docker/dockerfile:1
# mcpd, the mcpctl control plane. Build from the repository root:
#   docker build -f deploy/mcpd.Dockerfile -t mcpctl/mcpd:0.1.0 .
# Pin the base image by digest for reproducible builds:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the mcpctl wheel and the wheels of all its dependencies -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY authz ./authz
COPY mcpd ./mcpd
COPY mcplocal ./mcplocal
COPY cli ./cli
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip wheel --wheel-dir /wheels .

# --- final: a venv installed from those wheels only (no compiler, no build tools) ---------
FROM ${PYTHON_IMAGE}
# MCPD_SECRETS_KEY_FILE is a path, not a secret (DL3064 matches on its name).
# hadolint ignore=DL3064
ENV PATH=/opt/mcpctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/mcpd \
    XDG_DATA_HOME=/var/lib/mcpd \
    MCPD_HOST=0.0.0.0 \
    MCPD_PORT=8420 \
    MCPD_DATABASE_URL=sqlite:////var/lib/mcpd/mcpd.db \
    MCPD_SECRETS_KEY_FILE=/var/lib/mcpd/secrets.key \
    MCPD_LOG_DIR=/var/lib/mcpd/logs

# tini is PID 1: it forwards SIGTERM to mcpd and reaps the orphans of the stdio MCP
# servers mcpd supervises.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mcpd \
    && useradd --system --uid 10001 --gid mcpd --home-dir /var/lib/mcpd \
        --no-create-home --shell /usr/sbin/nologin mcpd \
    && install -d -o mcpd -g mcpd -m 0750 /var/lib/mcpd

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/mcpctl \
    && python -m pip --python /opt/mcpctl/bin/python install \
        --no-cache-dir --no-index --find-links /wheels mcpctl \
    && mcpd --help >/dev/null

# The SQLite default, the generated secrets key and the stdio servers' logs live here. With PostgreSQL
# (MCPD_DATABASE_URL=postgresql+psycopg://...) and MCPD_SECRETS_KEY set, nothing is
# written here and the root file system can be read-only.
VOLUME ["/var/lib/mcpd"]
WORKDIR /var/lib/mcpd
USER 10001:10001
EXPOSE 8420

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MCPD_PORT', '8420'), timeout=4)"]

ENTRYPOINT ["tini", "--", "mcpd"]
CMD ["serve"]
