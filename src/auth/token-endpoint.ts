// The token endpoint (realm) of the Docker token flow:
//   GET  /auth/token?service=…&scope=…[&offline_token=true]   Basic credentials optional (anonymous)
//   POST /auth/token  (application/x-www-form-urlencoded, OAuth2 as containerd/podman send it)
//        grant_type=password&username=…&password=…  or  grant_type=refresh_token&refresh_token=…
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '../oci/errors.js';
import { readBody, sendJson } from '../registry/respond.js';
import type { ClientIpResolver } from '../policy/client-ip.js';
import type { NetworkAcl } from '../policy/network-acl.js';
import type { RateLimiter } from '../policy/rate-limit.js';
import type { AuditLog } from './audit.js';
import type { Subject } from './authorizer.js';
import { parseScopes } from './scope.js';
import { LoginThrottle } from './login-throttle.js';
import type { TokenService } from './token-service.js';

export interface TokenEndpointDeps {
  tokens: TokenService;
  ips: ClientIpResolver;
  acl: NetworkAcl;
  limiter: RateLimiter;
  audit: AuditLog;
  throttle?: LoginThrottle;
}

export function parseBasic(header: string | undefined): { username: string; password: string } | null {
  if (!header || !/^Basic /i.test(header)) return null;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function tokenEndpoint(deps: TokenEndpointDeps) {
  const { tokens, ips, acl, limiter, audit } = deps;
  const throttle = deps.throttle ?? new LoginThrottle();
  // No Basic challenge here: clients send credentials to the realm unasked, and a Basic challenge
  // would invite browsers and some clients to use Basic on /v2, which only takes tokens.
  const badCredentials = () => new RegistryError('UNAUTHORIZED', 'authentication failed: wrong user name or password, or the account is disabled');

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const clientIp = ips.resolve(req);
    await acl.check(clientIp);
    // Token requests are part of every pull: they count as primary work.
    const release = limiter.admit('primary', clientIp, undefined);
    res.once('close', release);
    const url = new URL(req.url ?? '/', 'http://x');
    let params = url.searchParams;
    if (req.method === 'POST') {
      params = new URLSearchParams((await readBody(req, 64 * 1024, 'token request')).toString('utf8'));
    } else if (req.method !== 'GET') {
      throw new RegistryError('UNSUPPORTED', 'use GET or POST on the token endpoint', { status: 405, headers: { Allow: 'GET, POST' } });
    }
    const service = params.get('service');
    if (service !== null && service !== tokens.service) {
      throw new RegistryError('DENIED', `this token service is "${tokens.service}", not "${service.slice(0, 100)}"`);
    }
    const scopes = parseScopes(params.getAll('scope'));
    let subject: Subject;
    let withRefresh = params.get('offline_token') === 'true' || params.get('access_type') === 'offline';
    let login: string | undefined;
    const grantType = params.get('grant_type');
    if (req.method === 'POST' && grantType === 'refresh_token') {
      const s = await tokens.redeemRefresh(params.get('refresh_token') ?? '');
      if (!s) throw new RegistryError('UNAUTHORIZED', 'the refresh token is invalid, expired, or its account is disabled');
      subject = s;
      withRefresh = true;
    } else {
      let creds = parseBasic(req.headers.authorization);
      if (req.method === 'POST') {
        if (grantType !== 'password') throw new RegistryError('UNSUPPORTED', `grant_type must be "password" or "refresh_token"`, { status: 400 });
        creds = { username: params.get('username') ?? '', password: params.get('password') ?? '' };
        withRefresh = true;
      }
      if (creds) {
        login = creds.username;
        throttle.check(clientIp, creds.username);
        const s = await tokens.authenticate(creds.username, creds.password);
        if (!s) {
          throttle.failed(clientIp, creds.username);
          audit.record({ at: Date.now(), actor: creds.username.slice(0, 100), action: 'login', target: tokens.service, clientIp, outcome: 'UNAUTHORIZED' });
          throw badCredentials();
        }
        subject = s;
      } else {
        subject = { name: 'anonymous', kind: 'anonymous', isAdmin: false };
      }
    }
    const issued = await tokens.issue(subject, scopes, withRefresh);
    if (login !== undefined) {
      // Clients log in for every new scope: successful logins give way under load like pulls do;
      // failed ones (above) are always kept.
      audit.record({ at: Date.now(), actor: subject.name, action: 'login', target: tokens.service, clientIp, outcome: 'ok', detail: { scopes: params.getAll('scope') } }, true);
    }
    sendJson(res, 200, issued, { 'Cache-Control': 'no-store' });
  };
}
