#!/usr/bin/env bash
# Install the npm packages the tests run as real MCP servers into .tools/npm (gitignored):
# @modelcontextprotocol/server-everything (a stdio MCP server exercising the whole protocol).
# Needs Node.js and the npm registry; without Node it says so and the tests that need it skip.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=.tools/npm
PACKAGES=("@modelcontextprotocol/server-everything@2026.8.31")

if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-node-tools: npm not found; tests that run npm MCP servers will skip" >&2
  exit 0
fi
stamp="$PREFIX/.stamp-$(printf '%s ' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "ensure-node-tools: installing ${PACKAGES[*]} into $PREFIX" >&2
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${PACKAGES[@]}" >&2
touch "$stamp"
