// A household identity provider for the sign-in tests: npm's
// `oidc-provider` (an OpenID Certified implementation), serving HTTPS with
// one client (the coordinator) and a few accounts with groups. Its own
// development login and consent pages are used (any password is taken);
// everything else (discovery, keys, PKCE, codes, tokens, user info) is the
// library's. Started by testkit/src/identity_provider.rs; prints "ready"
// once it listens.
//
// Environment: OIDC_PROVIDER_MODULE (the library's lib/index.js), ISSUER,
// LISTEN_HOST, LISTEN_PORT, TLS_CERT, TLS_KEY (PEM files), CLIENT_ID,
// CLIENT_SECRET_FILE, REDIRECT_URI, ACCOUNTS (JSON: login -> {groups, and
// optionally username, email, email_verified: what the provider says of
// that person, by default their login, LOGIN@home.example, verified}),
// and CLOCK_AHEAD_SECONDS (optional: the provider's clock runs that far
// ahead, as a misconfigured or hostile one would).
import https from 'node:https';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const ahead = Number(process.env.CLOCK_AHEAD_SECONDS || 0) * 1000;
if (ahead) {
  const realNow = Date.now;
  Date.now = () => realNow() + ahead;
}

const { default: Provider } = await import(pathToFileURL(env('OIDC_PROVIDER_MODULE')).href);
const accounts = JSON.parse(env('ACCOUNTS'));

const provider = new Provider(env('ISSUER'), {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: fs.readFileSync(env('CLIENT_SECRET_FILE'), 'utf8').trim(),
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The ID token carries only who signed in; the name and groups come from
  // the user-info endpoint, as many providers do it.
  conformIdTokenClaims: true,
  pkce: { required: () => true },
  cookies: { keys: [fs.readFileSync(env('CLIENT_SECRET_FILE'), 'utf8').trim() + '-cookies'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: `account-${id}`,
          preferred_username: account.username ?? id,
          name: id,
          email: account.email ?? `${id}@home.example`,
          email_verified: account.email_verified ?? true,
          groups: account.groups ?? [],
        };
      },
    };
  },
});

const server = https.createServer(
  { cert: fs.readFileSync(env('TLS_CERT')), key: fs.readFileSync(env('TLS_KEY')) },
  provider.callback(),
);
server.listen(Number(env('LISTEN_PORT')), env('LISTEN_HOST'), () => {
  console.log('ready');
});
