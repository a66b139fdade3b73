// A real OpenID Connect provider (panva's oidc-provider, OpenID Certified) shaped like
// Pro Santé Connect, for the tests and the local demo. What it copies from PSC
// (docs/identity.md): the Keycloak realm paths, the discovery document at
// `/.well-known/wallet-openid-configuration` (the standard path answers 404), the
// authorization endpoint on a separate "wallet" host, `scope_all` with PSC's userinfo
// claims (SubjectNameID, SubjectRefPro...), `acr` levels `eidas1`+, 60-second access
// tokens, refresh tokens that die with the PSC session, RP-initiated logout.
//
// Usage: node server.mjs CONFIG.json
//   CONFIG = {port, issuerHost, walletHost, accounts: [...], clients: [...]}
// Prints one line `READY <issuer>` on stdout once it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = config.port;
const realmPath = '/auth/realms/esante-wallet';
const issuer = `http://${config.issuerHost}:${port}${realmPath}`;
const walletOrigin = `http://${config.walletHost}:${port}`;
const protocol = `${realmPath}/protocol/openid-connect`;
const authorizationPath = `${protocol}/auth`;
// The wallet host forwards to the realm's authorization route with this marker, so that
// an authorization request sent straight to the issuer host is refused as PSC would.
const walletMarker = randomBytes(16).toString('hex');

// Userinfo claims released with `scope_all`, as PSC names them.
const PSC_CLAIMS = [
  'SubjectNameID', 'preferred_username', 'given_name', 'family_name', 'email_verified',
  'codeCivilite', 'SubjectOrganization', 'SubjectOrganizationID', 'SubjectRole',
  'Secteur_Activite', 'PSI_Locale', 'Palier_Authentification', 'UITVersion',
  'Acces_Regulation_Medicale', 'Mode_Acces_Raison', 'otherIds', 'SubjectRefPro',
];

const accountsByLogin = new Map(config.accounts.map((account) => [account.login, account]));
const accountsBySub = new Map(config.accounts.map((account) => [account.userinfo.sub, account]));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'scope_all', 'offline_access'],
  claims: { openid: ['sub'], scope_all: PSC_CLAIMS },
  acrValues: ['eidas1', 'eidas2', 'eidas3'],
  pkce: { required: () => true },
  // Keycloak issues a refresh token with every code; it dies with the SSO session
  // (oidc-provider's expiresWithSession default, since nobody asks for offline_access).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: 60, // observed on PSC's sandbox
    AuthorizationCode: 60,
    IdToken: 300,
    RefreshToken: 1800,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  routes: {
    authorization: authorizationPath,
    token: `${protocol}/token`,
    userinfo: `${protocol}/userinfo`,
    end_session: `${protocol}/logout`,
    jwks: `${protocol}/certs`,
    introspection: `${protocol}/token/introspect`,
    revocation: `${protocol}/revoke`,
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    jwtUserinfo: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // For software that logs in to a mailbox with a bearer token (XOAUTH2): only
    // clients registered with the client_credentials grant may use it.
    clientCredentials: { enabled: true },
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => {
    const account = accountsBySub.get(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ ...account.userinfo }) };
  },
  clientBasedCORS: () => false,
});
provider.proxy = false;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// The "card reader": a form listing the test identities; the test (or the person trying
// the demo) picks one and the authentication level the card would give, or cancels.
async function showLogin(ctx, uid) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const options = config.accounts
    .map((a) => `<option value="${escapeHtml(a.login)}">${escapeHtml(a.userinfo.given_name)} ${escapeHtml(a.userinfo.family_name)} (${escapeHtml(a.login)})</option>`)
    .join('');
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Pro Santé Connect (test)</title></head>
<body><h1>Pro Santé Connect — fournisseur de test</h1>
<p>Client: ${escapeHtml(details.params.client_id)}</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Identité <select name="login">${options}</select></label>
<label>Niveau <select name="acr"><option>eidas1</option><option>eidas2</option><option>eidas3</option><option value="">(aucun)</option></select></label>
<button type="submit">Se connecter avec la carte CPS</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Annuler</button></form></body></html>`;
}

async function finishLogin(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const form = await readForm(ctx.req);
  const account = accountsByLogin.get(form.get('login') || '');
  if (!account) {
    ctx.status = 400;
    ctx.body = 'unknown test identity';
    return;
  }
  const { params } = details;
  const grant = new provider.Grant({ accountId: account.userinfo.sub, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  const grantId = await grant.save();
  const login = { accountId: account.userinfo.sub, amr: ['cps'] };
  const acr = form.get('acr');
  if (acr) login.acr = acr;
  const target = await provider.interactionResult(ctx.req, ctx.res, { login, consent: { grantId } }, { mergeWithLastSubmission: false });
  ctx.redirect(target);
}

// "Annuler": the user gives up; the client gets `error=access_denied`, as from PSC.
async function abortLogin(ctx) {
  const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
  const target = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(target);
}

provider.use(async (ctx, next) => {
  const walletRequest = ctx.host === `${config.walletHost}:${port}`;
  if (walletRequest) {
    // The wallet host only serves the authorization endpoint, like wallet.esw.esante.gouv.fr.
    if (ctx.path !== '/auth') {
      ctx.status = 404;
      return;
    }
    const query = new URLSearchParams(ctx.querystring);
    query.set('wallet_hop', walletMarker);
    ctx.redirect(`${issuer.replace(realmPath, '')}${authorizationPath}?${query}`);
    return;
  }
  if (ctx.path === '/.well-known/openid-configuration') {
    ctx.status = 404; // PSC does not serve the standard path
    return;
  }
  if (ctx.path === `${realmPath}/.well-known/wallet-openid-configuration`) {
    ctx.path = '/.well-known/openid-configuration';
    await next();
    if (ctx.status === 200 && ctx.body) {
      ctx.body = { ...ctx.body, authorization_endpoint: `${walletOrigin}/auth` };
    }
    return;
  }
  if (ctx.path === authorizationPath && ctx.method === 'GET') {
    const query = new URLSearchParams(ctx.querystring);
    if (query.get('wallet_hop') !== walletMarker) {
      ctx.status = 404;
      ctx.body = 'authorization is served on the wallet host';
      return;
    }
    query.delete('wallet_hop');
    ctx.querystring = query.toString();
  }
  const interaction = ctx.path.match(/^\/interaction\/([\w-]+)(\/login|\/abort)?$/);
  if (interaction) {
    if (interaction[2] === '/login' && ctx.method === 'POST') {
      await finishLogin(ctx);
    } else if (interaction[2] === '/abort' && ctx.method === 'POST') {
      await abortLogin(ctx);
    } else if (!interaction[2] && ctx.method === 'GET') {
      await showLogin(ctx, interaction[1]);
    } else {
      ctx.status = 405;
    }
    return;
  }
  await next();
});

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
