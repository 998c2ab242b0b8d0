// Wires tenancy into a registry process: the auth store, signing keys, token service, the /v2
// policy chain (network ACL → per-address rate limit → authn → per-account rate limit → RBAC →
// quota → immutability), the token endpoint, the admin API and the audit trail.
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Middleware } from '../registry/context.js';
import { RegistryError } from '../oci/errors.js';
import type { RouteKey } from '../registry/app.js';
import type { RegistryService } from '../registry/service.js';
import { ClientIpResolver } from '../policy/client-ip.js';
import { NetworkAcl } from '../policy/network-acl.js';
import { RateLimiter, type RequestClass } from '../policy/rate-limit.js';
import { immutability, networkAcl, principalRateLimit, quota, rateLimit } from '../policy/middlewares.js';
import { adminApi } from './admin-api.js';
import { AuditLog } from './audit.js';
import { bootstrapAdmin } from './bootstrap.js';
import { KeyRing } from './keys.js';
import { authenticate, authorize, writeContext, type ChallengeOptions } from './middlewares.js';
import { principalOf } from './principal.js';
import { SqliteAuthStore } from './sqlite-store.js';
import type { AuthStore } from './store.js';
import { tokenEndpoint } from './token-endpoint.js';
import { TokenService } from './token-service.js';

export interface TenancyConfig {
  /** Token auth and RBAC on /v2 (off: the registry is open, as before). */
  auth: boolean;
  service: string;
  realm?: string;
  tokenTtlMs: number;
  refreshTtlMs: number;
  keyRotationMs: number;
  trustedProxies: string[];
  networkDefaultDeny: boolean;
  rateLimitIp: Record<RequestClass, number>;
  rateLimitPrincipal: Record<RequestClass, number>;
  maxConcurrent: number;
  /** Password for the `admin` user, created at start when missing (SHOAL_ADMIN_PASSWORD). */
  adminPassword?: string;
}

export interface Tenancy {
  store: AuthStore;
  tokens: TokenService;
  keys: KeyRing;
  limiter: RateLimiter;
  audit: AuditLog;
  policies: Partial<Record<RouteKey | '*', Middleware[]>>;
  extraRoutes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>;
  close(): Promise<void>;
}

export async function createTenancy(config: TenancyConfig, dataDir: string, service: RegistryService, log: Logger): Promise<Tenancy> {
  const store = new SqliteAuthStore(join(dataDir, 'auth.db'));
  const keys = new KeyRing({ dir: join(dataDir, 'auth', 'keys'), rotateAfterMs: config.keyRotationMs, maxTokenTtlMs: Math.max(config.tokenTtlMs, config.refreshTtlMs) });
  const tokens = new TokenService({
    store,
    keys,
    service: config.service,
    issuer: config.service,
    accessTtlSeconds: Math.round(config.tokenTtlMs / 1000),
    refreshTtlSeconds: Math.round(config.refreshTtlMs / 1000),
  });
  const ips = new ClientIpResolver(config.trustedProxies);
  const acl = new NetworkAcl({ load: (scope) => store.getNetworkPolicy(scope), defaultDeny: config.networkDefaultDeny });
  const limiter = new RateLimiter({
    perIp: config.rateLimitIp,
    perPrincipal: config.rateLimitPrincipal,
    maxConcurrent: config.maxConcurrent,
    secondaryShare: 0.5,
  });
  const audit = new AuditLog({ store, log, overloaded: () => limiter.overloaded });

  await bootstrapAdmin({ store, audit, log, dataDir, auth: config.auth, adminPassword: config.adminPassword });

  const challenge: ChallengeOptions = { service: config.service, realm: config.realm };
  // Refused writes by someone who presented credentials (a client's first, token-less try of
  // every push is routine and left out). Refusals before authentication (network ACL, bad token)
  // have no verified name: "unverified-token".
  const refusedWrites: Middleware = async (ctx, next) => {
    const method = ctx.req.method;
    if (method === 'GET' || method === 'HEAD') return next();
    try {
      await next();
    } catch (err) {
      const p = principalOf(ctx);
      if (err instanceof RegistryError && (err.code === 'DENIED' || err.code === 'UNAUTHORIZED') && (p || ctx.req.headers.authorization)) {
        const target = ctx.route.name === 'manifest' ? `${ctx.route.repo}:${ctx.route.ref}` : ctx.route.repo;
        audit.record({ at: Date.now(), actor: p?.name ?? 'unverified-token', action: method === 'DELETE' ? 'delete' : 'push', target, clientIp: p?.clientIp ?? ips.resolve(ctx.req), outcome: err.code, detail: { reason: err.message.slice(0, 300) } });
      }
      throw err;
    }
  };
  // Address checks come first: a disallowed address is refused (403) whatever it presents, and a
  // flood of forged tokens hits the per-address limit before it costs an ES256 check each.
  const all: Middleware[] = [refusedWrites, networkAcl(acl, ips)];
  const rbac: Middleware[] = [];
  if (limiter.enabled) all.push(rateLimit(limiter, ips));
  if (config.auth) all.push(authenticate(tokens, ips, challenge));
  if (config.auth && limiter.enabled) all.push(principalRateLimit(limiter));
  if (config.auth) rbac.push(authorize(challenge));
  const pullAudit: Middleware = async (ctx, next) => {
    ctx.res.once('finish', () => {
      const p = principalOf(ctx);
      audit.record(
        { at: Date.now(), actor: p?.name ?? 'anonymous', action: 'pull', target: `${ctx.route.repo}:${ctx.route.ref}`, clientIp: p?.clientIp ?? ips.resolve(ctx.req), outcome: ctx.res.statusCode < 400 ? 'ok' : String(ctx.res.statusCode) },
        true,
      );
    });
    return next();
  };
  const policies: Tenancy['policies'] = {
    '*': [...all, ...rbac],
    'manifest GET': [pullAudit],
    // A HEAD is how docker/containerd check a tag before pulling: it reveals the digest, so it is a pull too.
    'manifest HEAD': [pullAudit],
    'manifest PUT': [quota(store, service), immutability(store, service)],
    'manifest DELETE': [immutability(store, service)],
    'upload PUT': [quota(store, service)],
    'upload.start POST': [quota(store, service)],
  };

  // Pushes and deletes, with the principal of the request that made them (writeContext).
  const recordWrite = (action: string, target: string) => {
    const p = writeContext.getStore();
    audit.record({ at: Date.now(), actor: p?.name ?? (config.auth ? 'unknown' : 'anonymous'), action, target, clientIp: p?.clientIp ?? '', outcome: 'ok' });
  };
  service.events.on('manifest.pushed', (e) => recordWrite('push', `${e.repo}@${e.digest}${e.tags.length ? ` (${e.tags.join(', ')})` : ''}`));
  service.events.on('manifest.deleted', (e) => recordWrite('delete', `${e.repo}@${e.digest}`));
  service.events.on('tag.deleted', (e) => recordWrite('delete', `${e.repo}:${e.tag}`));
  service.events.on('blob.deleted', (e) => recordWrite('delete', `${e.repo}@${e.digest}`));

  const rotation = setInterval(() => {
    try {
      if (keys.rotate()) log.info({ kid: keys.kid }, 'token signing key rotated');
    } catch (err) {
      log.error({ err }, 'key rotation failed');
    }
  }, Math.min(config.keyRotationMs, 3_600_000));
  rotation.unref();

  const extraRoutes: Tenancy['extraRoutes'] = {
    '/auth/token': tokenEndpoint({ tokens, ips, acl, limiter, audit }),
    '/api/v1/': adminApi({ store, tokens, service, ips, acl, limiter, audit }),
  };

  return {
    store,
    tokens,
    keys,
    limiter,
    audit,
    policies,
    extraRoutes,
    async close() {
      clearInterval(rotation);
      await audit.flush();
      await store.close();
    },
  };
}
