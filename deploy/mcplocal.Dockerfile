# syntax=docker/dockerfile:1
# mcplocal, the authorizing MCP proxy (Streamable HTTP at /mcp). Build from the repository root:
#   docker build -f deploy/mcplocal.Dockerfile -t mcpctl/mcplocal:0.1.0 .
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
# mcplocal's credential to mcpd is given at run time, never baked in.
ENV PATH=/opt/mcpctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/mcplocal \
    XDG_DATA_HOME=/var/lib/mcplocal \
    MCPLOCAL_HOST=0.0.0.0 \
    MCPLOCAL_PORT=8430 \
    MCPLOCAL_CACHE_DIR=/var/lib/mcplocal/cache

RUN groupadd --system --gid 10001 mcplocal \
    && useradd --system --uid 10001 --gid mcplocal --home-dir /var/lib/mcplocal \
        --no-create-home --shell /usr/sbin/nologin mcplocal \
    && install -d -o mcplocal -g mcplocal -m 0750 /var/lib/mcplocal /var/lib/mcplocal/cache

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/mcpctl \
    && python -m pip --python /opt/mcpctl/bin/python install \
        --no-cache-dir --no-index --find-links /wheels mcpctl \
    && test -x /opt/mcpctl/bin/mcplocal

# The proxy-model stage cache (size- and age-bounded by mcplocal itself).
VOLUME ["/var/lib/mcplocal/cache"]
WORKDIR /var/lib/mcplocal
USER 10001:10001
EXPOSE 8430

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MCPLOCAL_PORT', '8430'), timeout=4)"]

# Set at run time: MCPLOCAL_MCPD_URL; its credential to mcpd, MCPLOCAL_MCPD_TOKEN (a service
# account's token; or MCPLOCAL_MCPD_USER and MCPLOCAL_MCPD_PASSWORD); MCPLOCAL_ALLOWED_HOSTS
# and MCPLOCAL_PUBLIC_URL (the names clients use).
ENTRYPOINT ["mcplocal"]
CMD ["serve"]
