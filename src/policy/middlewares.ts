// Policy steps of the /v2 chain: network ACL and per-address rate limit (before authentication),
// per-account rate limit, quota and tag immutability (after it). Each is a Middleware (src/registry/context.ts) and answers with a typed error.
import { RegistryError } from '../oci/errors.js';
import { digestOf, isDigest, type Digest } from '../oci/digest.js';
import { readBody } from '../registry/respond.js';
import { formatBytes } from '../server/format.js';
import type { Middleware, RequestContext } from '../registry/context.js';
import type { RegistryService } from '../registry/service.js';
import { principalOf } from '../auth/principal.js';
import { namespaceOf, type AuthStore } from '../auth/store.js';
import type { ClientIpResolver } from './client-ip.js';
import type { NetworkAcl } from './network-acl.js';
import { classify, type RateLimiter } from './rate-limit.js';

/** State key under which a manifest body read by a policy is handed to the handler. */
export const MANIFEST_BODY_KEY = 'manifestBody';

const clientIpOf = (ctx: RequestContext, ips: ClientIpResolver) => principalOf(ctx)?.clientIp ?? ips.resolve(ctx.req);

export function networkAcl(acl: NetworkAcl, ips: ClientIpResolver): Middleware {
  return async (ctx, next) => {
    await acl.check(clientIpOf(ctx, ips), ctx.route.repo ? namespaceOf(ctx.route.repo) : undefined);
    return next();
  };
}

/** Concurrency budget and per-address limit: before authentication (needs no identity). */
export function rateLimit(limiter: RateLimiter, ips: ClientIpResolver): Middleware {
  return async (ctx, next) => {
    const release = limiter.admitClient(classify(ctx.route.name, ctx.req.method), clientIpOf(ctx, ips));
    ctx.res.once('close', release);
    try {
      await next();
    } catch (err) {
      release();
      throw err;
    }
  };
}

/** Per-account limit ("per token"): after authentication, which names the account. */
export function principalRateLimit(limiter: RateLimiter): Middleware {
  return async (ctx, next) => {
    limiter.admitPrincipal(classify(ctx.route.name, ctx.req.method), principalOf(ctx)?.name);
    return next();
  };
}

/**
 * Quota per namespace, checked where bytes become part of it: upload finish, single-POST uploads,
 * cross-repository mounts and manifest PUT.
 */
export function quota(store: AuthStore, service: RegistryService): Middleware {
  return async (ctx, next) => {
    const { route, req } = ctx;
    const ns = namespaceOf(route.repo);
    const limit = (await store.getNamespace(ns))?.quotaBytes ?? null;
    if (limit === null) return next();
    let adding = Number(req.headers['content-length'] ?? 0) || 0;
    if (route.name === 'manifest') {
      // The body actually sent, not its declared length: a chunked PUT declares none. Manifests
      // are small and bounded, and the handler (or immutability) takes the buffer from here.
      const body = await manifestBody(ctx, service);
      adding = body.length;
    } else if (route.name === 'upload' && req.method === 'PUT') adding += (await service.blobs.uploadSize(route.ref)) ?? 0;
    else if (route.name === 'upload.start' && ctx.query.has('mount')) {
      const mounted = await mountAdds(service, ns, ctx.query);
      // null: the mount cannot happen and the request falls back to an ordinary upload (below).
      if (mounted !== null) adding = mounted;
      else if (!(adding > 0 && ctx.query.has('digest'))) return next();
    } else if (route.name === 'upload.start' && !(adding > 0 && ctx.query.has('digest'))) return next(); // only single-POST uploads add bytes here
    const used = await service.meta.storageUsed(ns);
    if (used + adding > limit) {
      throw new RegistryError(
        'DENIED',
        `storage quota of namespace "${ns}" exceeded: ${formatBytes(used)} used of ${formatBytes(limit)}, this push adds ${formatBytes(adding)}`,
        { detail: { namespace: ns, usedBytes: used, limitBytes: limit, addingBytes: adding } },
      );
    }
    return next();
  };
}

/** Bytes a mount adds to `ns`: the blob's size unless the namespace already holds it; null when there is nothing to mount. */
async function mountAdds(service: RegistryService, ns: string, query: URLSearchParams): Promise<number | null> {
  const digest = query.get('mount') ?? '';
  if (!isDigest(digest)) return null; // the handler answers DIGEST_INVALID
  const from = query.get('from');
  const source = from === null ? await service.meta.getLiveBlob(digest) : await service.meta.getBlobLink(from, digest).catch(() => null);
  if (!source) return null;
  return (await service.meta.namespaceHolds(ns, digest)) ? 0 : source.size;
}

/** The manifest body, read once and shared by the policies and the handler (MANIFEST_BODY_KEY). */
async function manifestBody(ctx: RequestContext, service: RegistryService): Promise<Buffer> {
  const held = ctx.state[MANIFEST_BODY_KEY] as Buffer | undefined;
  if (held) return held;
  const body = await readBody(ctx.req, service.limits.maxManifestBytes, 'manifest');
  ctx.state[MANIFEST_BODY_KEY] = body;
  return body;
}

/** `*` and `?` globs, anchored. */
export function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/**
 * Tag immutability: a tag matching one of its namespace's patterns can be pushed once; pushing
 * other content under it, or deleting it (by tag, or by deleting the manifest it names), is refused.
 * Pushing the identical manifest again is allowed (clients retry).
 */
export function immutability(store: AuthStore, service: RegistryService): Middleware {
  return async (ctx, next) => {
    const { route, req } = ctx;
    const patterns = (await store.getNamespace(namespaceOf(route.repo)))?.immutableTags ?? [];
    if (patterns.length === 0) return next();
    const regexps = patterns.map(globToRegExp);
    const protectedTag = (t: string) => regexps.some((r) => r.test(t));
    const refuse = (tag: string, what: string) => {
      throw new RegistryError('DENIED', `tag "${tag}" of ${route.repo} is immutable (matches ${patterns.join(', ')}); it cannot be ${what}`, {
        detail: { repository: route.repo, tag, patterns },
      });
    };
    if (req.method === 'PUT') {
      const tags = [...(route.ref.includes(':') ? [] : [route.ref]), ...ctx.query.getAll('tag')].filter(protectedTag);
      if (tags.length === 0) return next();
      const existing = await Promise.all(tags.map(async (t) => [t, await service.meta.resolveTag(route.repo, t)] as const));
      if (existing.every(([, d]) => d === null)) return next();
      const digest = digestOf(await manifestBody(ctx, service));
      for (const [t, d] of existing) if (d !== null && d !== digest) refuse(t, 'overwritten');
      return next();
    }
    // DELETE
    if (!route.ref.includes(':')) {
      if (protectedTag(route.ref)) refuse(route.ref, 'deleted');
      return next();
    }
    for (const t of await tagsPointingTo(service, route.repo, route.ref as Digest)) if (protectedTag(t)) refuse(t, 'deleted (with its manifest)');
    return next();
  };
}

/** Tags of `repo` naming `digest` (bounded walk: deletes are rare). */
async function tagsPointingTo(service: RegistryService, repo: string, digest: Digest): Promise<string[]> {
  const out: string[] = [];
  let last: string | undefined;
  for (let page = 0; page < 100; page++) {
    const tags = await service.meta.listTags(repo, { limit: 1000, last });
    for (const t of tags) if ((await service.meta.resolveTag(repo, t)) === digest) out.push(t);
    if (tags.length < 1000) break;
    last = tags[tags.length - 1];
  }
  return out;
}
