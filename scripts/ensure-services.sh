#!/usr/bin/env bash
# Make sure the services the test suite talks to are up: PostgreSQL on 127.0.0.1:5432
# (trust auth) and Redis on 127.0.0.1:6379, bubblewrap (`bwrap`, the sandbox of stdio MCP
# servers), chromium (the OAuth browser test) and nginx (bench/proxy.py's floor: a plain
# reverse proxy; only installed, never started as a service). Installs them from Debian's
# packages when they are missing, starts the services when they are stopped. Idempotent.
set -euo pipefail

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
# headless chromium for the OAuth browser test (tests/oauth, driven by playwright-core)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ensure-services: installing ${need_apt[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-services: need root to install ${need_apt[*]}; install them and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "ensure-services: starting PostgreSQL" >&2
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  # a freshly installed cluster only trusts local socket users: allow loopback trust for tests
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -f "$hba" ] && ! grep -q "mcpctl-tests" "$hba"; then
    printf '# mcpctl-tests: trust loopback\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
      | cat - "$hba" > "$hba.new" && mv "$hba.new" "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >&2

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "ensure-services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.5; done
fi
