// Admin REST API under /api/v1 (administrators; namespace owners for their namespace's members,
// immutable tags and visibility; JSON; errors in the registry's typed form).
// Every change is audited with who, what, from where and when.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { RegistryError } from '../oci/errors.js';
import { isValidRepository } from '../oci/reference.js';
import { readBody, sendJson } from '../registry/respond.js';
import type { RegistryService } from '../registry/service.js';
import { parseCidr } from '../policy/cidr.js';
import type { ClientIpResolver } from '../policy/client-ip.js';
import type { NetworkAcl } from '../policy/network-acl.js';
import type { RateLimiter } from '../policy/rate-limit.js';
import type { AuditLog } from './audit.js';
import { checkPasswordStrength, hashPassword, hashSecret, newRobotSecret } from './password.js';
import { parseBasic } from './token-endpoint.js';
import type { TokenService } from './token-service.js';
import { ROBOT_PREFIX, ROLES, namespaceOf, type AuthStore, type Robot } from './store.js';

export interface AdminApiDeps {
  store: AuthStore;
  tokens: TokenService;
  service: RegistryService;
  ips: ClientIpResolver;
  acl: NetworkAcl;
  limiter: RateLimiter;
  audit: AuditLog;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const nsName = z.string().refine((v) => isValidRepository(v) && !v.includes('/'), 'namespace: lowercase letters, digits, . _ - (no "/")');
const userName = z.string().regex(NAME, 'user names: lowercase letters, digits, . _ - (1-64 characters)');
const action = z.enum(['pull', 'push', 'delete']);
const mode = z.enum(['open', 'allowlist', 'closed']);
const cidr = z.string().refine((v) => {
  try {
    parseCidr(v);
    return true;
  } catch {
    return false;
  }
}, 'invalid CIDR');

const schemas = {
  userCreate: z.object({ name: userName, password: z.string(), admin: z.boolean().default(false) }),
  userUpdate: z.object({ password: z.string().optional(), admin: z.boolean().optional() }),
  robotCreate: z.object({
    name: z.string().regex(/^(robot\$)?[a-z0-9][a-z0-9._-]{0,63}$/, 'robot names: lowercase letters, digits, . _ -'),
    description: z.string().max(500).default(''),
    permissions: z.array(z.object({ repository: z.string().refine((r) => isValidRepository(r.replace(/\/\*$/, '')), 'repository or namespace/*'), actions: z.array(action).min(1) })).min(1),
    expiresInSeconds: z.number().int().positive().nullable().default(null),
  }),
  nsCreate: z.object({ name: nsName }),
  member: z.object({ role: z.enum(ROLES as [string, ...string[]]) }),
  quota: z.object({ bytes: z.number().int().nonnegative().nullable() }),
  immutable: z.object({ patterns: z.array(z.string().regex(/^[A-Za-z0-9_.*?-]{1,128}$/, 'tag glob: tag characters plus * and ?')) }),
  network: z.object({ internal: mode, internet: mode, cidrs: z.array(cidr).default([]) }),
  visibility: z.object({ repository: z.string().refine(isValidRepository, 'invalid repository name'), visibility: z.enum(['public', 'private']) }),
};

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new RegistryError('NAME_INVALID', `invalid request: ${r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`, { status: 400 });
  }
  return r.data;
}

const notFound = (what: string) => new RegistryError('NAME_UNKNOWN', `${what} does not exist`, { status: 404 });
const robotName = (n: string) => (n.startsWith(ROBOT_PREFIX) ? n : `${ROBOT_PREFIX}${n}`);
const publicRobot = (r: Robot) => ({ name: r.name, description: r.description, permissions: r.permissions, createdAt: r.createdAt, expiresAt: r.expiresAt, revokedAt: r.revokedAt });

export function adminApi(deps: AdminApiDeps) {
  const { store, tokens, ips, acl, limiter, audit } = deps;

  /** The caller: Basic credentials of a user, or a bearer token. */
  async function caller(req: IncomingMessage): Promise<{ name: string; isAdmin: boolean }> {
    const header = req.headers.authorization;
    const basic = parseBasic(header);
    let subject: { name: string; isAdmin: boolean } | null = null;
    if (basic) subject = await tokens.authenticate(basic.username, basic.password);
    else if (header && /^Bearer /i.test(header)) {
      const claims = tokens.verifyAccess(header.slice(7).trim());
      if (typeof claims !== 'string' && (await tokens.subjectActive(claims.sub, claims.kind))) subject = { name: claims.sub, isAdmin: claims.adm === true };
    }
    if (!subject) {
      throw new RegistryError('UNAUTHORIZED', 'the admin API needs an administrator\'s credentials (HTTP Basic or a bearer token)', {
        headers: { 'WWW-Authenticate': `Basic realm="${tokens.service} admin"` },
      });
    }
    return subject;
  }

  /** Namespace owners may manage their namespace's members, immutable tags and visibility; the rest is for administrators. */
  const OWNER_ROUTES = new Set(['GET namespaces/:id', 'PUT namespaces/:id/members/:sub', 'DELETE namespaces/:id/members/:sub', 'PUT namespaces/:id/immutable', 'PUT visibility', 'GET whoami']);
  async function mayCall(who: { name: string; isAdmin: boolean }, route: string, ns: string | undefined): Promise<boolean> {
    if (who.isAdmin) return true;
    if (!OWNER_ROUTES.has(route)) return false;
    if (route === 'GET whoami') return true;
    if (!ns) return false;
    return (await store.listBindings({ namespace: ns, principal: who.name })).some((b) => b.role === 'owner');
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const clientIp = ips.resolve(req);
    await acl.check(clientIp);
    const release = limiter.admit('secondary', clientIp, undefined);
    res.once('close', release);
    const who = await caller(req);
    const actor = who.name;
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.replace(/^\/api\/v1\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const body = async () => {
      const raw = (await readBody(req, 1024 * 1024, 'request body')).toString('utf8');
      try {
        return raw ? JSON.parse(raw) : {};
      } catch {
        throw new RegistryError('NAME_INVALID', 'request body is not JSON', { status: 400 });
      }
    };
    const changed = (action: string, target: string, detail?: Record<string, unknown>) => {
      tokens.invalidate();
      acl.invalidate();
      audit.record({ at: Date.now(), actor, action, target, clientIp, outcome: 'ok', ...(detail ? { detail } : {}) });
    };
    const ok = (status: number, value: unknown) => sendJson(res, status, value);
    const [top, id, sub, subId] = parts;
    const route = `${method} ${top ?? ''}${id !== undefined ? '/:id' : ''}${sub !== undefined ? `/${sub}` : ''}${subId !== undefined ? '/:sub' : ''}`;
    // PUT visibility names its repository in the body: read it once here for the owner check.
    const parsedBody = method === 'PUT' || method === 'POST' ? await body() : undefined;
    const ns = top === 'namespaces' ? id : route === 'PUT visibility' && typeof parsedBody?.repository === 'string' ? namespaceOf(parsedBody.repository) : undefined;
    if (!(await mayCall(who, route, ns))) {
      throw new RegistryError('DENIED', who.isAdmin ? 'denied' : `"${actor}" is not an administrator${OWNER_ROUTES.has(route) ? ' or an owner of this namespace' : ''}`);
    }

    switch (route) {
      case 'GET whoami':
        return ok(200, { name: actor, admin: who.isAdmin });

      case 'GET users':
        return ok(200, (await store.listUsers()).map((u) => ({ name: u.name, admin: u.isAdmin, createdAt: u.createdAt })));
      case 'POST users': {
        const b = parse(schemas.userCreate, parsedBody);
        const weak = checkPasswordStrength(b.password);
        if (weak) throw new RegistryError('DENIED', weak, { status: 400 });
        if (await store.getUser(b.name)) throw new RegistryError('DENIED', `user "${b.name}" already exists`, { status: 409 });
        await store.putUser({ name: b.name, passwordHash: await hashPassword(b.password), isAdmin: b.admin, createdAt: Date.now() });
        changed('user.create', b.name, { admin: b.admin });
        return ok(201, { name: b.name, admin: b.admin });
      }
      case 'PUT users/:id': {
        const user = await store.getUser(id!);
        if (!user) throw notFound(`user "${id}"`);
        const b = parse(schemas.userUpdate, parsedBody);
        if (b.password !== undefined) {
          const weak = checkPasswordStrength(b.password);
          if (weak) throw new RegistryError('DENIED', weak, { status: 400 });
          user.passwordHash = await hashPassword(b.password);
        }
        if (b.admin !== undefined) user.isAdmin = b.admin;
        await store.putUser(user);
        changed('user.update', user.name, { passwordChanged: b.password !== undefined, admin: user.isAdmin });
        return ok(200, { name: user.name, admin: user.isAdmin });
      }
      case 'DELETE users/:id':
        if (id === actor) throw new RegistryError('DENIED', 'administrators cannot delete themselves', { status: 409 });
        if (!(await store.deleteUser(id!))) throw notFound(`user "${id}"`);
        changed('user.delete', id!);
        return ok(200, { deleted: id });

      case 'GET robots':
        return ok(200, (await store.listRobots()).map(publicRobot));
      case 'POST robots': {
        const b = parse(schemas.robotCreate, parsedBody);
        const name = robotName(b.name);
        if (await store.getRobot(name)) throw new RegistryError('DENIED', `robot "${name}" already exists`, { status: 409 });
        const secret = newRobotSecret();
        const now = Date.now();
        const robot: Robot = {
          name,
          secretHash: hashSecret(secret),
          permissions: b.permissions,
          description: b.description,
          createdAt: now,
          expiresAt: b.expiresInSeconds === null ? null : now + b.expiresInSeconds * 1000,
          revokedAt: null,
        };
        await store.putRobot(robot);
        changed('robot.create', name, { permissions: b.permissions, expiresAt: robot.expiresAt });
        // The secret is shown once; only its hash is stored.
        return ok(201, { ...publicRobot(robot), secret });
      }
      case 'POST robots/:id/revoke':
        if (!(await store.revokeRobot(robotName(id!), Date.now()))) throw notFound(`active robot "${robotName(id!)}"`);
        changed('robot.revoke', robotName(id!));
        return ok(200, { revoked: robotName(id!) });
      case 'DELETE robots/:id':
        if (!(await store.deleteRobot(robotName(id!)))) throw notFound(`robot "${robotName(id!)}"`);
        changed('robot.delete', robotName(id!));
        return ok(200, { deleted: robotName(id!) });

      case 'GET namespaces':
        return ok(200, await store.listNamespaces());
      case 'POST namespaces': {
        const b = parse(schemas.nsCreate, parsedBody);
        if (!(await store.createNamespace(b.name, Date.now()))) throw new RegistryError('DENIED', `namespace "${b.name}" already exists`, { status: 409 });
        changed('ns.create', b.name);
        return ok(201, await store.getNamespace(b.name));
      }
      case 'GET namespaces/:id': {
        const ns = await store.getNamespace(id!);
        if (!ns) throw notFound(`namespace "${id}"`);
        return ok(200, {
          ...ns,
          usedBytes: await deps.service.meta.storageUsed(ns.name),
          members: await store.listBindings({ namespace: ns.name }),
          network: await store.getNetworkPolicy(ns.name),
        });
      }
      case 'DELETE namespaces/:id':
        if (!(await store.deleteNamespace(id!))) throw notFound(`namespace "${id}"`);
        changed('ns.delete', id!);
        return ok(200, { deleted: id });
      case 'PUT namespaces/:id/members/:sub': {
        const b = parse(schemas.member, parsedBody);
        if (!(await store.getNamespace(id!))) throw notFound(`namespace "${id}"`);
        const principal = subId!;
        const exists = principal.startsWith(ROBOT_PREFIX) ? await store.getRobot(principal) : await store.getUser(principal);
        if (!exists) throw notFound(`user or robot "${principal}"`);
        await store.bindRole({ namespace: id!, principal, role: b.role as never });
        changed('ns.member.set', id!, { principal, role: b.role });
        return ok(200, { namespace: id, principal, role: b.role });
      }
      case 'DELETE namespaces/:id/members/:sub':
        if (!(await store.unbindRole(id!, subId!))) throw notFound(`role of "${subId}" in namespace "${id}"`);
        changed('ns.member.remove', id!, { principal: subId });
        return ok(200, { namespace: id, removed: subId });
      case 'PUT namespaces/:id/quota': {
        const b = parse(schemas.quota, parsedBody);
        if (!(await store.setQuota(id!, b.bytes))) throw notFound(`namespace "${id}"`);
        changed('ns.quota', id!, { bytes: b.bytes });
        return ok(200, await store.getNamespace(id!));
      }
      case 'PUT namespaces/:id/immutable': {
        const b = parse(schemas.immutable, parsedBody);
        if (!(await store.setImmutableTags(id!, b.patterns))) throw notFound(`namespace "${id}"`);
        changed('ns.immutable', id!, { patterns: b.patterns });
        return ok(200, await store.getNamespace(id!));
      }

      case 'GET network':
        return ok(200, await store.listNetworkPolicies());
      case 'PUT network/:id': {
        const scope = id === '_instance' ? '' : id!;
        if (scope && !(await store.getNamespace(scope))) throw notFound(`namespace "${scope}"`);
        const b = parse(schemas.network, parsedBody);
        await store.putNetworkPolicy({ scope, ...b });
        changed('network.set', scope || '*', b);
        return ok(200, { scope: scope || '_instance', ...b });
      }
      case 'DELETE network/:id': {
        const scope = id === '_instance' ? '' : id!;
        if (!(await store.deleteNetworkPolicy(scope))) throw notFound(`network policy "${id}"`);
        changed('network.delete', scope || '*');
        return ok(200, { deleted: id });
      }

      case 'GET visibility':
        return ok(200, { public: await store.listPublicRepositories() });
      case 'PUT visibility': {
        const b = parse(schemas.visibility, parsedBody);
        await store.setVisibility(b.repository, b.visibility);
        changed('visibility.set', b.repository, { visibility: b.visibility });
        return ok(200, b);
      }

      case 'GET audit': {
        const q = url.searchParams;
        const num = (k: string) => (q.has(k) ? Number(q.get(k)) : undefined);
        await audit.flush();
        return ok(200, await store.queryAudit({
          actor: q.get('actor') ?? undefined,
          action: q.get('action') ?? undefined,
          target: q.get('target') ?? undefined,
          since: num('since'),
          until: num('until'),
          limit: Math.min(num('limit') ?? 100, 10_000),
        }));
      }
      default:
        throw new RegistryError('NAME_UNKNOWN', `no admin endpoint ${method} /api/v1/${parts.join('/')}`, { status: 404 });
    }
  };
}
