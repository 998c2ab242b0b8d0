// Private images stay private in the swarm: before the agent serves a blob from P2P, the registry
// must confirm that THIS caller may read it (a HEAD with the caller's own Authorization). The
// decision is cached briefly per (credentials, repository, digest), so a node pulling 20 layers
// costs 20 small HEADs, not 20 downloads, and revocations take effect within the TTL.
import { createHash } from 'node:crypto';
import type { HttpPool } from '../../client/http-pool.js';
import { originPool } from './proxy.js';

export interface AuthDecision {
  allowed: boolean;
  /** Registry status and headers to pass back when refused (401 with WWW-Authenticate, 404, ...). */
  status: number;
  headers: Record<string, string>;
  /** Blob size the registry reported, when allowed. */
  size?: number;
}

export class BlobAuthorizer {
  private readonly cache = new Map<string, { decision: AuthDecision; expiresAt: number }>();

  constructor(
    private readonly registry: string,
    private readonly ttlMs = 30_000,
    private readonly pool: HttpPool = originPool,
  ) {}

  async check(repo: string, digest: string, authorization: string | undefined, now = Date.now()): Promise<AuthDecision> {
    const key = `${createHash('sha256').update(authorization ?? '').digest('base64')}|${repo}|${digest}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return hit.decision;
    const res = await this.pool.request(`${this.registry}/v2/${repo}/blobs/${digest}`, {
      method: 'HEAD',
      headers: authorization ? { authorization } : {},
      headersTimeout: 10_000,
    });
    res.body.dump();
    const headers: Record<string, string> = {};
    for (const h of ['www-authenticate', 'content-type', 'docker-distribution-api-version']) {
      const v = res.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const decision: AuthDecision = { allowed: res.statusCode === 200, status: res.statusCode, headers };
    const len = Number(res.headers['content-length']);
    if (decision.allowed && Number.isFinite(len)) decision.size = len;
    // Only cache definite answers; a registry hiccup (5xx) must not stick.
    if (res.statusCode < 500) {
      if (this.cache.size > 50_000) this.cache.clear();
      this.cache.set(key, { decision, expiresAt: now + this.ttlMs });
    }
    return decision;
  }
}
