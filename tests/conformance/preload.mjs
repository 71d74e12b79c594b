// Loaded with `node --import` before the official conformance suite, which has no header
// option: every request it makes (the SDK transport's and its own fetch(), and
// undici.request()) gets `Authorization: Bearer $CONFORMANCE_BEARER`, through undici's
// global dispatcher, which Node's fetch shares.
//
// With CONFORMANCE_NAME_PREFIX=P (mcplocal, which exposes `<server>__<name>`), it is also the
// thin name-mapping wrapper: the names the suite sends (tools/call, prompts/get, a prompt's
// completion ref) get P in front, and P is taken off every string in the answers.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.CONFORMANCE_NODE_MODULES, "x.js"));
const undici = require("undici");
const bearer = process.env.CONFORMANCE_BEARER || "";
const prefix = process.env.CONFORMANCE_NAME_PREFIX || "";

function withBearer(headers) {
  const auth = `Bearer ${bearer}`;
  if (headers == null) return { authorization: auth };
  if (Array.isArray(headers)) return [...headers, "authorization", auth];
  if (typeof headers[Symbol.iterator] === "function" && !(typeof headers === "object" && !headers.entries)) {
    return [...headers, ["authorization", auth]];
  }
  return { ...headers, authorization: auth };
}

if (bearer) {
  const base = undici.getGlobalDispatcher();
  undici.setGlobalDispatcher(
    base.compose((dispatch) => (opts, handler) => dispatch({ ...opts, headers: withBearer(opts.headers) }, handler)),
  );
}

if (prefix) {
  const original = globalThis.fetch;
  const named = new Set(["tools/call", "prompts/get"]);
  const mapOut = (m) => {
    if (!m || typeof m !== "object" || typeof m.method !== "string" || !m.params) return m;
    if (named.has(m.method) && typeof m.params.name === "string") {
      m.params.name = prefix + m.params.name;
    } else if (m.method === "completion/complete" && m.params.ref?.type === "ref/prompt") {
      m.params.ref.name = prefix + m.params.ref.name;
    }
    return m;
  };
  const strip = (text) => text.split(`"${prefix}`).join('"');
  globalThis.fetch = async (input, init = {}) => {
    if (typeof init.body === "string") {
      try {
        const parsed = JSON.parse(init.body);
        init = { ...init, body: JSON.stringify(Array.isArray(parsed) ? parsed.map(mapOut) : mapOut(parsed)) };
      } catch {}
    }
    const response = await original(input, init);
    if (!response.body) return response;
    let carry = "";
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    const body = response.body.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          carry += decoder.decode(chunk, { stream: true });
          const cut = carry.lastIndexOf("\n");
          if (cut >= 0) {
            controller.enqueue(encoder.encode(strip(carry.slice(0, cut + 1))));
            carry = carry.slice(cut + 1);
          }
        },
        flush(controller) {
          if (carry) controller.enqueue(encoder.encode(strip(carry)));
        },
      }),
    );
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
