// Hot-manifest cache: thousands of nodes ask for the same manifest in the same second.
// Digest entries are immutable content; tag entries change on push/delete and are invalidated
// here in-process. The TTL bounds staleness for writes made by another process (a CLI GC,
// another replica) that this process never sees.
import type { Digest } from '../oci/digest.js';

export interface CachedManifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  /** Quoted strong ETag, precomputed once. */
  etag: string;
  /**
   * Response headers, built once per entry as a plain literal: building them per request (with a
   * spread) promoted garbage into the old generation and caused full GCs under a pull storm.
   */
  headers: Record<string, string | number>;
  subject?: Digest;
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

export interface ManifestCacheOptions {
  maxBytes: number;
  ttlMs: number;
}

export class ManifestCache {
  /** Insertion-ordered map used as an LRU: a hit re-inserts the key at the end. */
  private readonly manifests = new Map<string, Entry<CachedManifest>>();
  private readonly tags = new Map<string, Entry<Digest>>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly opts: ManifestCacheOptions) {}

  getManifest(repo: string, digest: Digest, now = Date.now()): CachedManifest | undefined {
    const key = `${repo}@${digest}`;
    const e = this.manifests.get(key);
    if (!e || e.expiresAt < now) {
      if (e) this.dropManifestKey(key, e);
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.manifests.delete(key);
    this.manifests.set(key, e);
    return e.value;
  }

  setManifest(repo: string, m: CachedManifest, now = Date.now()): void {
    if (this.opts.maxBytes <= 0 || m.body.length > this.opts.maxBytes / 4) return;
    const key = `${repo}@${m.digest}`;
    const old = this.manifests.get(key);
    if (old) this.dropManifestKey(key, old);
    this.manifests.set(key, { value: m, expiresAt: now + this.opts.ttlMs });
    this.bytes += m.body.length;
    for (const [k, e] of this.manifests) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.dropManifestKey(k, e);
    }
  }

  getTag(repo: string, tag: string, now = Date.now()): Digest | undefined {
    const e = this.tags.get(`${repo}:${tag}`);
    if (!e || e.expiresAt < now) return undefined;
    return e.value;
  }

  setTag(repo: string, tag: string, digest: Digest, now = Date.now()): void {
    if (this.opts.maxBytes <= 0) return;
    if (this.tags.size > 100_000) this.tags.clear();
    this.tags.set(`${repo}:${tag}`, { value: digest, expiresAt: now + this.opts.ttlMs });
  }

  deleteTag(repo: string, tag: string): void {
    this.tags.delete(`${repo}:${tag}`);
  }

  /** A deleted manifest takes its digest entry and every cached tag pointing at it. */
  deleteManifest(repo: string, digest: Digest): void {
    const key = `${repo}@${digest}`;
    const e = this.manifests.get(key);
    if (e) this.dropManifestKey(key, e);
    const prefix = `${repo}:`;
    for (const [k, t] of this.tags) if (t.value === digest && k.startsWith(prefix)) this.tags.delete(k);
  }

  get size(): { manifests: number; tags: number; bytes: number } {
    return { manifests: this.manifests.size, tags: this.tags.size, bytes: this.bytes };
  }

  private dropManifestKey(key: string, e: Entry<CachedManifest>): void {
    this.manifests.delete(key);
    this.bytes -= e.value.body.length;
  }
}
