#!/usr/bin/env node
// A real OpenID provider for the interop checks (the npm package `oidc-provider`, by panva),
// plus the client side run.sh needs: fetching a token and reading the discovery document.
//
// Usage:
//   node oidc_provider.mjs serve --port P [--issuer http://127.0.0.1:P] [--kid-prefix K]
//        --device-secret S --tollgate-secret S
//        [--mtls-port Q --tls-cert F --tls-key F --tls-ca F]
//   node oidc_provider.mjs token --issuer URL --client-id ID --client-secret S
//        [--resource urn:tollgate] [--scope mqtt] [--mtls-port Q --cert F --key F --ca F]
//   node oidc_provider.mjs discover --issuer URL --field introspection_endpoint
//
// serve: an OpenID provider listening on 127.0.0.1:P whose issuer is --issuer (by default
// http://127.0.0.1:P; tokens carry it in `iss` exactly as given). It has the client
// credentials grant, token introspection (RFC 7662) and resource indicators (RFC 8707):
//
//   - a client credentials request with resource=urn:tollgate gets a JWT access token
//     (RFC 9068: header typ "at+jwt"; aud "urn:tollgate"; sub and client_id the client's id;
//     scope "mqtt" when asked for). device-1's tokens are signed RS256, device-2's ES256;
//   - a request without a resource gets an opaque access token, which only introspection can
//     tell about;
//   - clients: device-1 and device-2 (client_secret_basic, client_credentials only, secret
//     --device-secret) and tollgate (client_secret_basic, secret --tollgate-secret: the
//     broker's identity at the introspection endpoint, and the client that relays the device
//     authorization grant, RFC 8628, for devices that speak only MQTT);
//   - the device flow: /device/auth for the codes, /device for the user (its pages, then the
//     development login and consent pages, which take any login and password: the login
//     becomes the token's sub). A device code grant of tollgate's gets a JWT for
//     urn:tollgate, as a client credentials grant with that resource does.
//
// With --mtls-port the provider also listens on https://localhost:Q (the --tls-cert server
// certificate), asking each client for a certificate signed by --tls-ca, and binds the
// tokens of client device-3 (tls_client_certificate_bound_access_tokens) to the certificate
// that asked for them (RFC 8705: the JWT's cnf carries its x5t#S256 thumbprint). `token`
// with --mtls-port asks there, presenting --cert/--key.
//
// Its signing keys (RSA 2048 for RS256, P-256 for ES256) are generated at start, so two
// instances never share keys: a token of one does not verify with the JWKS of the other. Their
// key ids are their RFC 7638 thumbprints, or with --kid-prefix K "K-rs256" and "K-es256": two
// instances given the same prefix then name their (different) keys alike, and only the
// signature tells their tokens apart. Everything is kept in memory. Once listening it prints
// "READY <issuer>" on stdout (the caller waits for that line; everything else it prints comes
// after it, or on stderr).
//
// token: fetches an access token by the client credentials grant (client_secret_basic) from
// the token_endpoint named in <issuer>/.well-known/openid-configuration, and prints it.
// discover: prints one field of the discovery document. For both, --issuer is where the
// provider listens: its issuer, unless it was started with an --issuer of another address
// (the endpoints in its discovery document are always on the address it was asked at).
// Both exit non-zero, with the reason on stderr, on any failure; every request has a time limit.

import { generateKeyPairSync, randomBytes, createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';

const RESOURCE = 'urn:tollgate';
const SCOPE = 'mqtt';
const FETCH_TIMEOUT_MS = 5000;

function usage(msg) {
  if (msg) console.error(`oidc_provider.mjs: ${msg}`);
  console.error('usage: node oidc_provider.mjs serve --port P [--issuer URL] [--kid-prefix K] --device-secret S --tollgate-secret S');
  console.error('       node oidc_provider.mjs token --issuer URL --client-id ID --client-secret S [--resource R] [--scope S]');
  console.error('       node oidc_provider.mjs discover --issuer URL --field NAME');
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
const { values: args } = parseArgs({
  args: rest,
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    'device-secret': { type: 'string' },
    'tollgate-secret': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    resource: { type: 'string' },
    scope: { type: 'string' },
    field: { type: 'string' },
    'kid-prefix': { type: 'string' },
    'mtls-port': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
  },
});

// A private JWK for `alg`, with `kidPrefix`-alg or the RFC 7638 thumbprint as its key id.
function signingKey(alg, kidPrefix) {
  const { privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  const kid = kidPrefix !== undefined
    ? `${kidPrefix}-${alg.toLowerCase()}`
    : createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return { ...jwk, kid, alg, use: 'sig' };
}

async function serve() {
  if (!args.port || !args['device-secret'] || !args['tollgate-secret']) usage('serve needs --port, --device-secret and --tollgate-secret');
  const port = Number(args.port);
  const issuer = args.issuer ?? `http://127.0.0.1:${port}`;
  // imported here, so `token` and `discover` work (and start fast) without it
  const { default: Provider, errors } = await import('oidc-provider');

  // which algorithm signs each client's JWT access tokens (both keys are in the JWKS)
  const tokenAlg = { 'device-1': 'RS256', 'device-2': 'ES256' };
  const device = (clientId) => ({
    client_id: clientId,
    client_secret: args['device-secret'],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPE,
  });

  const provider = new Provider(issuer, {
    clients: [
      device('device-1'),
      device('device-2'),
      // its tokens are bound to the certificate it asks with (when asked over mutual TLS)
      { ...device('device-3'), tls_client_certificate_bound_access_tokens: true },
      {
        client_id: 'tollgate',
        client_secret: args['tollgate-secret'],
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
        response_types: [],
        redirect_uris: [],
        scope: `openid ${SCOPE}`,
      },
    ],
    jwks: { keys: [signingKey('RS256', args['kid-prefix']), signingKey('ES256', args['kid-prefix'])] },
    scopes: ['openid', SCOPE],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    ttl: { ClientCredentials: 600, AccessToken: 600 },
    features: {
      // the development login and consent pages, for the device flow's user
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        // the certificate the client presented on the https listener (none over http)
        getCertificate: (ctx) => {
          const peer = ctx.socket?.getPeerCertificate?.(true);
          return peer?.raw ? new X509Certificate(peer.raw) : undefined;
        },
      },
      introspection: {
        enabled: true,
        // the broker (client tollgate) may introspect anyone's tokens; a client its own
        allowedPolicy: (ctx, client, token) => client.clientId === 'tollgate' || client.clientId === token.clientId,
      },
      resourceIndicators: {
        enabled: true,
        // no resource parameter: no resource server, so an opaque token
        defaultResource: (ctx, client, oneOf) => oneOf,
        // a device code grant (the broker relaying it) gets the resource asked for at the
        // device authorization request
        useGrantedResource: (ctx) => ctx.oidc.params?.grant_type === 'urn:ietf:params:oauth:grant-type:device_code',
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: tokenAlg[client.clientId] ?? 'RS256' } },
          };
        },
      },
    },
  });
  // the provider's own failures (a bad request is answered, and logged here as well)
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  const server = provider.listen(port, '127.0.0.1');
  server.on('error', (err) => {
    console.error(`oidc_provider.mjs: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  });
  const listening = [new Promise((resolve) => server.on('listening', resolve))];
  if (args['mtls-port']) {
    const mtls = createHttpsServer({
      cert: readFileSync(args['tls-cert']),
      key: readFileSync(args['tls-key']),
      ca: readFileSync(args['tls-ca']),
      requestCert: true,
      rejectUnauthorized: false,
    }, provider.callback());
    mtls.on('error', (err) => {
      console.error(`oidc_provider.mjs: cannot listen on 127.0.0.1:${args['mtls-port']}: ${err.message}`);
      process.exit(1);
    });
    mtls.listen(Number(args['mtls-port']), '127.0.0.1');
    listening.push(new Promise((resolve) => mtls.on('listening', resolve)));
  }
  Promise.all(listening).then(() => console.log(`READY ${issuer}`));
  // everything is in memory: nothing to save, and no open connection to wait for
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

async function getJson(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}: ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${url}: not JSON: ${text.slice(0, 200)}`);
  }
}

const discovery = (issuer) => getJson(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);

async function token() {
  if (!args.issuer || !args['client-id'] || !args['client-secret']) usage('token needs --issuer, --client-id and --client-secret');
  const { token_endpoint: endpoint } = await discovery(args.issuer);
  if (!endpoint) throw new Error(`${args.issuer}: no token_endpoint in the discovery document`);
  const body = new URLSearchParams({ grant_type: 'client_credentials', scope: args.scope ?? SCOPE });
  if (args.resource) body.set('resource', args.resource);
  // RFC 6749 2.3.1: the id and secret are form-urlencoded before going into Basic
  const basic = Buffer.from(`${encodeURIComponent(args['client-id'])}:${encodeURIComponent(args['client-secret'])}`).toString('base64');
  const headers = { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' };
  const answer = args['mtls-port']
    ? await postMtls(new URL(endpoint).pathname, headers, body.toString())
    : await getJson(endpoint, { method: 'POST', headers, body });
  if (typeof answer.access_token !== 'string') throw new Error(`${endpoint}: no access_token in ${JSON.stringify(answer)}`);
  console.log(answer.access_token);
}

// POSTs `body` to `path` on the provider's mutual TLS listener, presenting --cert/--key.
function postMtls(path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      servername: 'localhost',
      port: Number(args['mtls-port']),
      path,
      method: 'POST',
      headers,
      cert: readFileSync(args.cert),
      key: readFileSync(args.key),
      ca: readFileSync(args.ca),
      timeout: FETCH_TIMEOUT_MS,
    }, (res) => {
      let text = '';
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`mTLS ${path}: HTTP ${res.statusCode}: ${text}`));
        try { resolve(JSON.parse(text)); } catch { reject(new Error(`mTLS ${path}: not JSON: ${text.slice(0, 200)}`)); }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`mTLS ${path}: no answer within ${FETCH_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function discover() {
  if (!args.issuer || !args.field) usage('discover needs --issuer and --field');
  const value = (await discovery(args.issuer))[args.field];
  if (value === undefined) throw new Error(`${args.issuer}: no ${args.field} in the discovery document`);
  console.log(typeof value === 'string' ? value : JSON.stringify(value));
}

const commands = { serve, token, discover };
if (!commands[command]) usage(command ? `unknown command '${command}'` : 'no command');
commands[command]().catch((err) => {
  console.error(`oidc_provider.mjs ${command}: ${err.message}`);
  process.exit(1);
});
