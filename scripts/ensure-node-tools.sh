#!/usr/bin/env bash
# Install the npm tools the tests use into .tools/ (gitignored):
#   .tools/node22  Node.js 22 (the npm package `node`): the MCP Inspector CLI wants Node >= 22
#   .tools/npm     @modelcontextprotocol/server-everything (a stdio MCP server exercising the
#                  whole protocol) and @modelcontextprotocol/inspector (its CLI is a real
#                  MCP client the tests point at mcplocal), @modelcontextprotocol/conformance
#                  (the official server conformance suite, tests/conformance),
#                  @modelcontextprotocol/sdk (its OAuth client provider, tests/oauth) and
#                  playwright-core (drives Debian's chromium there; it never downloads a browser)
# Needs npm and the npm registry; without npm it says so and the tests that need these skip.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_PKG="node@22.23.3"
PACKAGES=("@modelcontextprotocol/server-everything@2026.8.31" "@modelcontextprotocol/inspector@2.12.0"
  "@modelcontextprotocol/conformance@0.1.16" "@modelcontextprotocol/sdk@1.32.2"
  "playwright-core@1.65.1")

if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-node-tools: npm not found; tests that run npm MCP tools will skip" >&2
  exit 0
fi
stamp=".tools/.stamp-$(printf '%s ' "$NODE_PKG" "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "ensure-node-tools: installing $NODE_PKG into .tools/node22" >&2
mkdir -p .tools/node22 .tools/npm
npm install --prefix .tools/node22 --no-audit --no-fund --loglevel=error "$NODE_PKG" >&2
echo "ensure-node-tools: installing ${PACKAGES[*]} into .tools/npm" >&2
PATH="$PWD/.tools/node22/node_modules/node/bin:$PATH" \
  npm install --prefix .tools/npm --no-audit --no-fund --loglevel=error "${PACKAGES[@]}" >&2
touch "$stamp"
