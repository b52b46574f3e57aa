// Development identity provider: a real OpenID Connect provider (npm `oidc-provider`) that
// stands in for INDIGO-IAM on one machine and in tests. Never use it in production: its users
// and passwords come from a plain YAML file.
//
// It mirrors what the facility relies on from IAM: IAM's endpoint paths, a login form,
// refresh tokens, JWT access tokens, and the groups in IAM's `groups` claim (IAM profile) and
// in `wlcg.groups` (WLCG profile, with a leading `/`). Its access tokens follow the WLCG common
// JWT profile as IAM issues them, so that grid storage accepts them: `wlcg.ver`, an audience
// (the WLCG `any` audience unless the client asks for a resource), and in `scope` the storage
// scopes of the user's own area (`storage.read|create|modify:/user/<name>`, relative to the
// storage's base path), granted to every client as an IAM scope policy would.
//
// usage: node devidp.mjs --config devidp.json
//   config: { issuer, port, users (path to YAML), keys (path, made on first start),
//             clients: [{client_id, client_secret, redirect_uris, post_logout_redirect_uris}],
//             accessTokenTTL, refreshTokenTTL, tls: {cert, key} (HTTPS when given) }
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import querystring from 'node:querystring';

import yaml from 'js-yaml';
import Provider from 'oidc-provider';

const RESOURCE = 'https://wlcg.cern.ch/jwt/v1/any';
const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'wlcg', 'wlcg.groups'];

function argument(name) {
  const at = process.argv.indexOf(name);
  if (at < 0 || at + 1 >= process.argv.length) {
    throw new Error(`devidp: missing ${name} <value>`);
  }
  return process.argv[at + 1];
}

function loadUsers(file) {
  const doc = yaml.load(fs.readFileSync(file, 'utf8'));
  if (!doc || !Array.isArray(doc.users)) {
    throw new Error(`devidp: ${file} needs a top-level 'users:' list`);
  }
  const users = new Map();
  for (const [i, user] of doc.users.entries()) {
    for (const key of ['username', 'password']) {
      if (typeof user[key] !== 'string' || !user[key]) {
        throw new Error(`devidp: ${file}: users[${i}] needs a string '${key}'`);
      }
    }
    users.set(user.username, { groups: [], ...user });
  }
  return users;
}

// Signing keys survive restarts, so tokens issued before a restart still verify.
function loadKeys(file) {
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }), { mode: 0o600 });
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function claimsOf(user) {
  return {
    sub: crypto.createHash('sha256').update(user.username).digest('hex').slice(0, 32),
    preferred_username: user.username,
    name: user.name ?? user.username,
    email: user.email ?? `${user.username.replace('@', '.')}@example.org`,
    groups: user.groups,
    'wlcg.groups': user.groups.map((g) => `/${g}`),
  };
}

// What IAM's scope policy would grant: the user's own storage area, read and write.
function storageScopes(user) {
  return ['read', 'create', 'modify'].map((verb) => `storage.${verb}:/user/${user.username}`);
}

// WLCG profile access tokens: the user's storage scopes join the granted ones.
async function wlcgAccessToken(_ctx, token, jwt) {
  const user = accounts.get(token.accountId);
  if (!user) return;
  const granted = (jwt.payload.scope ?? '').split(' ').filter(Boolean);
  jwt.payload.scope = [...new Set([...granted, ...storageScopes(user)])].join(' ');
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><title>Development IAM: ${escape(title)}</title></head>
<body style="font-family: sans-serif; max-width: 24em; margin: 4em auto">
<h1>Development IAM</h1>
<p>A stand-in for INDIGO-IAM on this machine. Not for production.</p>
${body}</body></html>`;
}

// The relying party asked to end the session: do it without a question (the user pressed
// Logout at the hub), with a button for browsers without JavaScript.
async function logoutSource(ctx, form) {
  const confirm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"></form>');
  ctx.body = page('signing out', `<p id="signing-out">Signing you out...</p>
${confirm}<noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
<script>document.getElementById('op.logoutForm').submit();</script>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('signed out', '<p id="signed-out">You have signed out.</p>');
}

const config = JSON.parse(fs.readFileSync(argument('--config'), 'utf8'));
const users = loadUsers(config.users);
const accounts = new Map([...users.values()].map((u) => [claimsOf(u).sub, u]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: loadKeys(config.keys),
  routes: {
    authorization: '/authorize',
    token: '/token',
    userinfo: '/userinfo',
    jwks: '/jwk',
    revocation: '/revoke',
    introspection: '/introspect',
    end_session: '/logout',
  },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups'],
    email: ['email'],
    'wlcg.groups': ['wlcg.groups'],
  },
  // IAM puts the profile claims (groups included) in the ID token too.
  conformIdTokenClaims: false,
  // As IAM does: a refresh token for every client allowed the grant, without OpenID's rule
  // that offline_access needs prompt=consent; reusable until revoked or expired.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: false,
  ttl: {
    AccessToken: config.accessTokenTTL ?? 3600,
    IdToken: config.accessTokenTTL ?? 3600,
    RefreshToken: config.refreshTokenTTL ?? 30 * 24 * 3600,
    Grant: config.refreshTokenTTL ?? 30 * 24 * 3600,
    Session: 24 * 3600,
    Interaction: 3600,
    AuthorizationCode: 60,
  },
  features: {
    devInteractions: { enabled: false },
    // RP-initiated logout at `/logout` (end_session_endpoint): the hub's Logout ends this
    // session too, then comes back to a registered post_logout_redirect_uri.
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    revocation: { enabled: true },
    introspection: { enabled: true },
    // JWT access tokens, as IAM issues: every token is for one audience unless asked otherwise.
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        audience: resource,
        scope: SCOPES.join(' '),
        accessTokenFormat: 'jwt',
        accessTokenTTL: config.accessTokenTTL ?? 3600,
      }),
    },
  },
  async extraTokenClaims(_ctx, token) {
    const user = accounts.get(token.accountId);
    if (!user) return undefined;
    const { preferred_username, groups } = claimsOf(user);
    return { preferred_username, groups, 'wlcg.groups': claimsOf(user)['wlcg.groups'], 'wlcg.ver': '1.0' };
  },
  async findAccount(_ctx, sub) {
    const user = accounts.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => claimsOf(user) };
  },
  formats: { customizers: { jwt: wlcgAccessToken } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [crypto.createHash('sha256').update(JSON.stringify(loadKeys(config.keys))).digest('hex')] },
});
provider.proxy = true;


function loginPage(uid, error) {
  return page('sign in', `${error ? `<p id="error" style="color: #b00">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <label>Username <input id="username" name="username" autofocus></label><br><br>
  <label>Password <input id="password" name="password" type="password"></label><br><br>
  <button id="sign-in" type="submit">Sign in</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

// First-party clients only: consent is granted for whatever the client asked.
async function grantConsent(ctx, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const result = { consent: { grantId: await grant.save() } };
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (match[2] && ctx.method === 'POST') {
    const form = await readForm(ctx.req);
    const user = users.get(form.username);
    if (!user || user.password !== form.password) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, 'Unknown username or wrong password.');
      return undefined;
    }
    const result = { login: { accountId: claimsOf(user).sub } };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    return undefined;
  }
  if (details.prompt.name === 'consent') return grantConsent(ctx, details);
  ctx.type = 'html';
  ctx.body = loginPage(details.uid);
  return undefined;
});

const server = config.tls
  ? https.createServer(
    { cert: fs.readFileSync(config.tls.cert), key: fs.readFileSync(config.tls.key) },
    provider.callback(),
  )
  : http.createServer(provider.callback());
server.listen(config.port, config.host ?? '127.0.0.1', () => {
  console.log(`devidp: ${config.issuer} ready, ${users.size} users from ${config.users}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
