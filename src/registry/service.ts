// Registry operations independent of HTTP: the handlers, the GC and (later) replication call these.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import { digestOf, parseDigest, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { assertTag } from '../oci/reference.js';
import type { BlobStore, AppendOptions } from '../storage/blob-store.js';
import type { MetaStore, ManifestRecord } from '../meta/meta-store.js';
import { ManifestCache, type CachedManifest } from './manifest-cache.js';
import { RegistryEvents } from './events.js';

export interface RegistryLimits {
  maxManifestBytes: number;
  maxBlobBytes: number;
  /** Blobs touched within this window are never collected (protects pushes in flight). */
  gcGraceMs: number;
}

export interface ServiceOptions {
  blobs: BlobStore;
  meta: MetaStore;
  cache: ManifestCache;
  limits: RegistryLimits;
  now?: () => number;
}

export interface PutManifestResult {
  digest: Digest;
  parsed: ParsedManifest;
}

const RESERVE_RETRY_MS = 25;
const RESERVE_MAX_WAIT_MS = 10_000;

export class RegistryService {
  readonly blobs: BlobStore;
  readonly meta: MetaStore;
  readonly cache: ManifestCache;
  readonly limits: RegistryLimits;
  /** Committed changes, for audit and delivery chains. */
  readonly events = new RegistryEvents();
  private readonly now: () => number;
  /** Serialises operations on one upload session (two PATCHes to one id must not interleave). */
  private readonly uploadLocks = new Map<string, Promise<unknown>>();
  private readonly lastTouch = new Map<Digest, number>();

  constructor(opts: ServiceOptions) {
    this.blobs = opts.blobs;
    this.meta = opts.meta;
    this.cache = opts.cache;
    this.limits = opts.limits;
    this.now = opts.now ?? Date.now;
  }

  // ---- blobs ----

  async statBlob(repo: string, digest: Digest, opts: { touch?: boolean } = {}): Promise<{ digest: Digest; size: number } | null> {
    const link = await this.meta.getBlobLink(repo, digest);
    if (!link) return null;
    // A HEAD means a client is about to rely on this blob instead of uploading it: keep it out of GC.
    if (opts.touch) await this.touch(digest);
    return { digest, size: link.size };
  }

  /**
   * Refreshes a digest's GC grace period (Harbor's "HEAD revives a candidate"), at most a few
   * times per grace window, so hot HEADs don't turn into a database write each.
   */
  async touch(digest: Digest): Promise<void> {
    const now = this.now();
    const last = this.lastTouch.get(digest);
    if (last !== undefined && now - last < this.limits.gcGraceMs / 4) return;
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    this.lastTouch.set(digest, now);
    await this.meta.touchBlob(digest, now);
  }

  async deleteBlob(repo: string, digest: Digest): Promise<void> {
    if (!(await this.meta.unlinkBlob(repo, digest))) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${repo}`);
    this.events.publish('blob.deleted', { repo, digest });
  }

  /** Cross-repository mount; with `from` undefined, an anonymous mount of any blob the registry holds. */
  async mountBlob(repo: string, digest: Digest, from: string | undefined): Promise<boolean> {
    const source = from === undefined ? await this.meta.getLiveBlob(digest) : await this.meta.getBlobLink(from, digest);
    if (!source) return false;
    try {
      await this.meta.linkBlob(repo, digest, this.now());
      return true;
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') return false;
      throw err;
    }
  }

  // ---- uploads ----

  async startUpload(repo: string): Promise<string> {
    const id = randomUUID();
    await this.blobs.createUpload(id);
    await this.meta.createUpload({ id, repo, startedAt: this.now() });
    return id;
  }

  async uploadOffset(repo: string, id: string): Promise<number> {
    await this.requireUpload(repo, id);
    const size = await this.blobs.uploadSize(id);
    if (size === null) throw uploadUnknown(id);
    return size;
  }

  appendUpload(repo: string, id: string, body: Readable, opts: AppendOptions): Promise<number> {
    return this.withUploadLock(id, async () => {
      await this.requireUpload(repo, id);
      return this.blobs.appendUpload(id, body, { ...opts, maxTotalSize: this.limits.maxBlobBytes });
    });
  }

  /** Verifies and publishes the upload as `digest` in `repo`. */
  finishUpload(repo: string, id: string, digest: Digest, finalChunk?: { body: Readable; opts: AppendOptions }): Promise<{ size: number }> {
    return this.withUploadLock(id, async () => {
      await this.requireUpload(repo, id);
      if (finalChunk) await this.blobs.appendUpload(id, finalChunk.body, { ...finalChunk.opts, maxTotalSize: this.limits.maxBlobBytes });
      parseDigest(digest);
      const size = await this.blobs.uploadSize(id);
      if (size === null) throw uploadUnknown(id);
      await this.reserve(digest, size);
      const info = await this.blobs.commitUpload(id, digest);
      await this.meta.deleteUpload(id);
      try {
        await this.meta.linkBlob(repo, digest, this.now());
      } catch (err) {
        // Only when finishing took longer than the GC grace window (a starved process): GC took
        // the fresh blob before it was linked. Nothing half-written is visible; the client retries.
        if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') {
          throw new RegistryError('UNAVAILABLE', `blob ${digest} was garbage-collected while the upload finished; upload it again`, { headers: { 'Retry-After': '1' } });
        }
        throw err;
      }
      return { size: info.size };
    });
  }

  cancelUpload(repo: string, id: string): Promise<void> {
    return this.withUploadLock(id, async () => {
      await this.requireUpload(repo, id);
      await this.meta.deleteUpload(id);
      await this.blobs.abortUpload(id);
    });
  }

  private async requireUpload(repo: string, id: string): Promise<void> {
    const session = await this.meta.getUpload(id);
    if (!session || session.repo !== repo) throw uploadUnknown(id);
  }

  private withUploadLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.uploadLocks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.uploadLocks.set(id, tail);
    void tail.then(() => {
      if (this.uploadLocks.get(id) === tail) this.uploadLocks.delete(id);
    });
    return run;
  }

  /** Claims the blob row before its file appears; waits while a GC pass is deleting the same digest. */
  private async reserve(digest: Digest, size: number): Promise<void> {
    const deadline = this.now() + RESERVE_MAX_WAIT_MS;
    while ((await this.meta.reserveBlob(digest, size, this.now())) === 'deleting') {
      if (this.now() > deadline) throw new RegistryError('UNAVAILABLE', `blob ${digest} is being garbage-collected; retry shortly`, { headers: { 'Retry-After': '1' } });
      await new Promise((r) => setTimeout(r, RESERVE_RETRY_MS));
    }
  }

  // ---- manifests ----

  async putManifest(repo: string, reference: string, body: Buffer, contentType: string | undefined, extraTags: string[]): Promise<PutManifestResult> {
    let digest: Digest;
    const tags: string[] = [];
    if (reference.includes(':')) {
      const { algorithm } = parseDigest(reference);
      digest = digestOf(body, algorithm);
      if (digest !== reference) throw new RegistryError('DIGEST_INVALID', `manifest body hashes to ${digest}, not ${reference}`);
    } else {
      tags.push(assertTag(reference));
      digest = digestOf(body);
    }
    for (const t of extraTags) tags.push(assertTag(t));
    const parsed = parseManifest(body, contentType);
    await this.reserve(digest, body.length);
    if ((await this.blobs.stat(digest))?.size !== body.length) await this.blobs.put(digest, body);
    await this.meta.putManifest(
      {
        repo,
        digest,
        mediaType: parsed.mediaType,
        size: body.length,
        artifactType: parsed.artifactType,
        subject: parsed.subject?.digest,
        annotations: parsed.annotations,
        blobs: uniqueDigests(parsed.blobs),
        manifests: uniqueDigests(parsed.manifests),
        tags,
      },
      this.now(),
    );
    for (const t of tags) this.cache.setTag(repo, t, digest);
    this.events.publish('manifest.pushed', { repo, digest, mediaType: parsed.mediaType, tags, subject: parsed.subject?.digest, artifactType: parsed.artifactType });
    return { digest, parsed };
  }

  /** Resolves a tag or digest to the manifest's bytes, through the hot cache. */
  async getManifest(repo: string, reference: string): Promise<CachedManifest> {
    let digest: Digest | undefined;
    if (reference.includes(':')) {
      parseDigest(reference);
      digest = reference as Digest;
    } else {
      digest = this.cache.getTag(repo, reference);
      if (!digest) {
        digest = (await this.meta.resolveTag(repo, reference)) ?? undefined;
        if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', `manifest tagged "${reference}" is not in repository ${repo}`);
        this.cache.setTag(repo, reference, digest);
      }
    }
    const cached = this.cache.getManifest(repo, digest);
    if (cached) return cached;
    const record = await this.meta.getManifest(repo, digest);
    if (!record) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in repository ${repo}`);
    const entry = toCached(record, await this.blobs.readAll(digest));
    this.cache.setManifest(repo, entry);
    return entry;
  }

  /** DELETE by digest removes the manifest (and its tags); by tag removes only the tag. */
  async deleteManifest(repo: string, reference: string): Promise<void> {
    if (reference.includes(':')) {
      const digest = reference as Digest;
      parseDigest(digest);
      const removed = await this.meta.deleteManifest(repo, digest);
      this.cache.deleteManifest(repo, digest);
      if (!removed) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in repository ${repo}`);
      this.events.publish('manifest.deleted', { repo, digest });
      return;
    }
    assertTag(reference);
    const removed = await this.meta.deleteTag(repo, reference);
    this.cache.deleteTag(repo, reference);
    if (!removed) throw new RegistryError('MANIFEST_UNKNOWN', `tag "${reference}" is not in repository ${repo}`);
    this.events.publish('tag.deleted', { repo, tag: reference });
  }

  async listReferrers(repo: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    parseDigest(subject);
    return this.meta.listReferrers(repo, subject, artifactType);
  }
}

function toCached(record: ManifestRecord, body: Buffer): CachedManifest {
  const etag = `"${record.digest}"`;
  const m: CachedManifest = {
    digest: record.digest,
    mediaType: record.mediaType,
    body,
    etag,
    headers: {
      'Docker-Distribution-API-Version': 'registry/2.0',
      'Content-Type': record.mediaType,
      'Docker-Content-Digest': record.digest,
      ETag: etag,
      'Content-Length': body.length,
    },
  };
  if (record.subject) m.subject = record.subject;
  return m;
}

function uniqueDigests(ds: Descriptor[]): Digest[] {
  return [...new Set(ds.map((d) => d.digest))];
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown, finished or cancelled; start a new upload with POST`);
}
