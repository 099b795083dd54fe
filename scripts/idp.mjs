// tollgate's dev identity provider: a real OIDC issuer (oauth2-mock-server) for `make up`,
// the end-to-end tests and the compose stack.
//
// Usage: node scripts/idp.mjs [--host 127.0.0.1] [--port 8082] [--issuer URL] [--keys FILE]
//                             [--audience tollgate] [--alg RS256]
//
// Serves the standard OIDC endpoints of oauth2-mock-server (discovery at
// /.well-known/openid-configuration, /token, /userinfo, ...) with two changes that make key
// rotation controllable:
//   * GET  /jwks                 the *published* keys (the current signing key plus any key
//                                kept after a rotation), public parts only;
//   * tokens are always signed with the *current* key (oauth2-mock-server alone round-robins).
// and a small control API for tests and scripts/dev-token.sh (dev only, never in production):
//   * POST /tollgate/token   {"claims":{...},"expires_in":3600}  -> {"token":"...","kid":"..."}
//                            claims override defaults (sub, aud, groups, iss, exp...); a claim set
//                            to null is removed (e.g. {"exp":null} for a token without exp).
//   * POST /tollgate/rotate  {"keep_old":true}  -> {"kid":"<new>","published":[kids]}
//   * POST /tollgate/remove  {"kid":"..."}      -> {"published":[kids]}
//   * GET  /tollgate/keys                        -> {"current":"kid","published":[kids]}
// The standard POST /token (grant_type=client_credentials) issues a token with sub=client_id
// (default "dev-agent"), aud=<audience> and groups from the form field `groups`
// (comma-separated, default "agents").
//
// --keys FILE keeps the private keys on disk so that a restart (simulating an IdP outage)
// serves the same keys. Prints "tollgate-idp listening on http://HOST:PORT" when ready.

import { createServer } from "node:http";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { OAuth2Issuer, OAuth2Service, Events } from "oauth2-mock-server";

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", port: 8082, issuer: undefined, keys: undefined, audience: "tollgate", alg: "RS256" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    switch (flag) {
      case "--host": opts.host = value; break;
      case "--port": opts.port = Number(value); break;
      case "--issuer": opts.issuer = value; break;
      case "--keys": opts.keys = value; break;
      case "--audience": opts.audience = value; break;
      case "--alg": opts.alg = value; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
    i++;
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error("bad --port");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// state: all keys with private parts; `published` kids appear in /jwks; `current` signs.
let state = { current: undefined, published: [], keys: {} };
let issuerUrl;
// oauth2-mock-server signs with its keystore's keys in round-robin and cannot remove a key, so
// the issuer and service are rebuilt around the current key alone at each rotation.
let issuer;
let service;

function save() {
  if (opts.keys) writeFileSync(opts.keys, JSON.stringify(state), { mode: 0o600 });
}

async function newKey() {
  const scratch = new OAuth2Issuer();
  const jwk = await scratch.keys.generate(opts.alg, { kid: `dev-${randomBytes(6).toString("hex")}` });
  state.keys[jwk.kid] = jwk;
  return jwk.kid;
}

async function useCurrent() {
  const fresh = new OAuth2Issuer();
  await fresh.keys.add(state.keys[state.current]);
  fresh.url = issuerUrl;
  const svc = new OAuth2Service(fresh);
  // The standard token endpoint: dev claims.
  svc.on(Events.BeforeTokenSigning, (token, req) => {
    const body = req.body ?? {};
    token.payload.aud = opts.audience;
    token.payload.sub = typeof body.client_id === "string" && body.client_id !== "" ? body.client_id : "dev-agent";
    const groups = typeof body.groups === "string" ? body.groups : "agents";
    token.payload.groups = groups.split(",").map((g) => g.trim()).filter((g) => g !== "");
  });
  issuer = fresh;
  service = svc;
}

function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, k, ...pub } = jwk;
  return { ...pub, use: "sig" };
}

async function signToken(claims, expiresIn) {
  return await issuer.buildToken({
    expiresIn,
    scopesOrTransform: (_header, payload) => {
      payload.aud = opts.audience;
      payload.sub = "dev-agent";
      payload.groups = ["agents"];
      for (const [name, value] of Object.entries(claims ?? {})) {
        if (value === null) delete payload[name];
        else payload[name] = value;
      }
    },
  });
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  return text.trim() === "" ? {} : JSON.parse(text);
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function control(req, res, path) {
  if (req.method === "GET" && path === "/jwks") {
    return send(res, 200, { keys: state.published.map((kid) => publicJwk(state.keys[kid])) });
  }
  if (req.method === "GET" && path === "/tollgate/keys") {
    return send(res, 200, { current: state.current, published: state.published });
  }
  if (req.method === "POST" && path === "/tollgate/token") {
    const body = await readJson(req);
    const token = await signToken(body.claims, body.expires_in ?? 3600);
    return send(res, 200, { token, kid: state.current });
  }
  if (req.method === "POST" && path === "/tollgate/rotate") {
    const body = await readJson(req);
    const kid = await newKey();
    state.published = body.keep_old === false ? [kid] : [kid, ...state.published];
    state.current = kid;
    await useCurrent();
    save();
    return send(res, 200, { kid, published: state.published });
  }
  if (req.method === "POST" && path === "/tollgate/remove") {
    const body = await readJson(req);
    state.published = state.published.filter((kid) => kid !== body.kid);
    save();
    return send(res, 200, { published: state.published });
  }
  return false;
}

async function main() {
  if (opts.keys && existsSync(opts.keys)) {
    state = JSON.parse(readFileSync(opts.keys, "utf8"));
  } else {
    const kid = await newKey();
    state.current = kid;
    state.published = [kid];
    save();
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    control(req, res, path)
      .then((handled) => {
        if (handled === false) service.requestHandler(req, res);
      })
      .catch((err) => send(res, 400, { error: String(err?.message ?? err) }));
  });
  server.on("error", (err) => {
    console.error(`tollgate-idp: ${err.message}`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, async () => {
    const { port } = server.address();
    const hostPart = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    issuerUrl = opts.issuer ?? `http://${hostPart}:${port}`;
    await useCurrent();
    console.log(`tollgate-idp listening on http://${hostPart}:${port} issuer=${issuerUrl} kid=${state.current}`);
  });
  const stop = () => {
    server.closeAllConnections?.();
    server.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(`tollgate-idp: ${err?.stack ?? err}`);
  process.exit(1);
});
