// An MCP client that knows only mcplocal's URL: the TypeScript SDK's OAuth client provider
// (dynamic registration, PKCE, resource indicator), with headless Chromium (playwright-core)
// as the user's browser signing in to mcpd and consenting. Driven by tests/oauth/test_browser.py:
//
//   node browser_flow.mjs '{"url": ..., "user": ..., "password": ..., "project": ...,
//                           "tool": ..., "args": {...}, "shots": DIR, "chromium": PATH}'
//
// It prints one JSON line per step on stdout ({"step": ...}); after "called" it waits for a
// line on stdin (the test revoked the grant with mcpctl meanwhile) and calls again.
import http from "node:http";
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// the loopback redirect URI (RFC 8252): a port of our own, registered as is
const codes = [];
let codeArrived = () => {};
const callback = http.createServer((req, res) => {
  const u = new URL(req.url, "http://127.0.0.1");
  if (u.pathname !== "/callback") { res.writeHead(404).end(); return; }
  codes.push({ code: u.searchParams.get("code"), state: u.searchParams.get("state"),
    error: u.searchParams.get("error"), iss: u.searchParams.get("iss") });
  res.writeHead(200, { "content-type": "text/plain" }).end("signed in; you may close this window");
  codeArrived();
});
await new Promise((ok) => callback.listen(0, "127.0.0.1", ok));
const redirectUrl = `http://127.0.0.1:${callback.address().port}/callback`;

const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true,
  args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 760, height: 900 } });
let browserRuns = 0;

class Provider {
  constructor() { this._client = undefined; this._tokens = undefined; this._verifier = "";
    this._state = ""; }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return { client_name: "browser-flow test client", redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
      token_endpoint_auth_method: "none" };
  }
  state() { this._state = Math.random().toString(36).slice(2); return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(t) { this._tokens = t; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  invalidateCredentials(scope) { if (scope === "all" || scope === "tokens") this._tokens = undefined; }
  async redirectToAuthorization(url) {
    browserRuns += 1;
    if (browserRuns > 1) { say({ step: "reauthorize", url: url.origin + url.pathname }); return; }
    say({ step: "authorize", url: url.origin + url.pathname,
      resource: url.searchParams.get("resource"), method: url.searchParams.get("code_challenge_method") });
    await page.goto(url.toString());
    await page.getByLabel("User name").fill(cfg.user);
    await page.getByLabel("Password").fill(cfg.password);
    await page.screenshot({ path: `${cfg.shots}/oauth-login.png` });
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForLoadState();
    if (await page.getByRole("button", { name: "Allow" }).count() === 0) {
      await page.getByLabel("Project").selectOption(cfg.project);
      await page.getByRole("button", { name: "Show what it may do" }).click();
      await page.waitForLoadState();
    }
    const offered = await page.locator('input[name="binding"]').evaluateAll(
      (els) => els.map((e) => e.value));
    say({ step: "consent", offered });
    await page.screenshot({ path: `${cfg.shots}/oauth-consent.png` });
    const arrived = new Promise((ok) => { codeArrived = ok; });
    await page.getByRole("button", { name: "Allow" }).click();
    await arrived;
  }
}

const statuses = [];
const tracingFetch = async (input, init) => {
  const r = await fetch(input, init);
  statuses.push(r.status);
  return r;
};
const provider = new Provider();
const url = new URL(cfg.url);

async function connect() {
  const transport = new StreamableHTTPClientTransport(url, { authProvider: provider,
    fetch: tracingFetch });
  const client = new Client({ name: "browser-flow", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

let session;
try {
  try {
    session = await connect();
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    const got = codes.at(-1);
    say({ step: "redirected", stateOk: got.state === provider._state, iss: got.iss,
      error: got.error });
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider,
      fetch: tracingFetch });
    await transport.finishAuth(got.code);
    session = await connect();
  }
  const tools = (await session.client.listTools()).tools.map((t) => t.name);
  say({ step: "listed", tools });
  const result = await session.client.callTool({ name: cfg.tool, arguments: cfg.args });
  say({ step: "called", text: result.content?.[0]?.text, isError: !!result.isError,
    tokenPrefix: provider._tokens?.access_token?.slice(0, 11) });

  // the test revokes the grant with mcpctl, then writes a line
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((ok) => rl.once("line", ok));
  const started = Date.now();
  const before = statuses.length;
  let after;
  try {
    const again = await session.client.callTool({ name: cfg.tool, arguments: cfg.args });
    after = { ok: true, isError: !!again.isError, text: again.content?.[0]?.text };
  } catch (e) {
    after = { ok: false, error: String(e?.message ?? e).slice(0, 300),
      unauthorized: e instanceof UnauthorizedError };
  }
  const raw = await fetch(url, { method: "POST", headers: {
    authorization: `Bearer ${provider._tokens?.access_token}`, "content-type": "application/json",
    accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }) });
  say({ step: "after-revoke", ...after, statuses: statuses.slice(before), ms: Date.now() - started,
    rawStatus: raw.status, rawChallenge: raw.headers.get("www-authenticate") });
  rl.close();
} catch (e) {
  const where = await page.content().catch(() => "");
  say({ step: "failed", error: String(e?.stack ?? e).slice(0, 2000),
    page: where.replace(/<style>[\s\S]*<\/style>/, "").slice(0, 3000) });
  process.exitCode = 1;
} finally {
  await browser.close();
  callback.close();
  await session?.client.close().catch(() => {});
}
