// Push-based replication of one image (manifest tree, blobs, referrers) from a source registry to a
// target registry over the Distribution API. Blobs already on the target are skipped, blobs known
// in another target repository are mounted, and the rest are copied in PATCH chunks whose
// confirmed offset is journaled, so a copy killed halfway resumes from the target's upload status.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { MANIFEST_ACCEPT, RegistryClient, readStream, type BlobResponse } from '../client/registry-client.js';
import type { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { OCI_INDEX } from '../oci/media-types.js';
import { backoffDelay, sleepUnlessAborted } from '../chain/stage.js';
import type { UploadJournal } from './journal.js';

export interface ReplicatorOptions {
  journal: UploadJournal;
  /** Blobs copied at once. */
  concurrency?: number;
  /** PATCH chunk size in bytes (16 MiB default). */
  chunkSize?: number;
  /** Attempts per blob and per manifest before the image fails. */
  attempts?: number;
  backoffMs?: number;
  log?: Logger;
}

export interface ReplicateRequest {
  sourceRepo: string;
  /** Tag or digest in the source. */
  reference: string;
  targetRepo: string;
  /** Tags to set on the target (default: the reference when it is a tag). */
  tags?: string[];
  referrers?: boolean;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  onLog?: (message: string) => void;
}

export interface ReplicateResult {
  digest: Digest;
  manifests: number;
  referrers: number;
  blobs: { total: number; present: number; mounted: number; copied: number; resumed: number };
  totalBytes: number;
  /** Payload bytes sent to the target (what a resume saves shows here). */
  bytesSent: number;
}

interface Tree {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  children: Tree[];
  blobs: Descriptor[];
}

export class Replicator {
  /** digest → a target repository known to hold it (for cross-repository mounts). */
  private readonly knownOnTarget = new Map<string, string>();
  private readonly chunkSize: number;

  constructor(
    readonly source: RegistryClient,
    readonly target: RegistryClient,
    private readonly opts: ReplicatorOptions,
  ) {
    this.chunkSize = opts.chunkSize ?? 16 * 1024 * 1024;
  }

  async replicate(req: ReplicateRequest): Promise<ReplicateResult> {
    const log = req.onLog ?? (() => {});
    const tree = await this.fetchTree(req.sourceRepo, req.reference, 0);
    // Every manifest of the tree is a subject: the scanner attaches per-platform SBOMs to an index's children.
    const referrers = req.referrers === false ? new Map<Digest, Tree[]>() : await this.fetchReferrers(req.sourceRepo, manifestDigests(tree));
    const result = await this.transfer(req, [tree, ...[...referrers.values()].flat()]);
    // Children before parents, subject before referrers: the target may check both.
    const tags = req.tags ?? (req.reference.includes(':') ? [] : [req.reference]);
    await this.putTree(req, tree, tags, result);
    await this.putReferrers(req, referrers, () => true, result);
    log(`${req.sourceRepo}@${tree.digest} → ${this.target.base}/${req.targetRepo}: ${result.blobs.copied} copied (${result.blobs.resumed} resumed), ${result.blobs.mounted} mounted, ${result.blobs.present} present, ${result.referrers} referrer(s), ${result.bytesSent} bytes sent`);
    return { ...result, digest: tree.digest };
  }

  /**
   * Copies the referrers (and theirs) of the image or manifest `reference` that the target lacks:
   * a signature pushed after the image was replicated, or what the full sync finds missing.
   * `result.referrers` counts the referrers copied; 0 when the target had them all.
   */
  async replicateReferrers(req: Omit<ReplicateRequest, 'tags' | 'referrers'>): Promise<ReplicateResult> {
    const tree = await this.fetchTree(req.sourceRepo, req.reference, 0);
    const referrers = await this.fetchReferrers(req.sourceRepo, manifestDigests(tree));
    const missing = new Set<string>();
    for (const r of [...referrers.values()].flat()) if (!(await this.targetHasManifest(req.targetRepo, r.digest))) missing.add(r.digest);
    const result = await this.transfer(req, [...referrers.values()].flat().filter((r) => missing.has(r.digest)));
    await this.putReferrers(req, referrers, (r) => missing.has(r.digest), result);
    if (missing.size > 0) req.onLog?.(`${missing.size} referrer(s) of ${req.sourceRepo}@${tree.digest} → ${this.target.base}/${req.targetRepo}, ${result.bytesSent} bytes sent`);
    return { ...result, digest: tree.digest };
  }

  /** Copies the blobs of `trees` (with their children) to the target; manifests are put by the caller. */
  private async transfer(req: Pick<ReplicateRequest, 'sourceRepo' | 'targetRepo' | 'signal' | 'onProgress' | 'onLog'>, trees: Tree[]): Promise<ReplicateResult> {
    const log = req.onLog ?? (() => {});
    const blobs = new Map<string, Descriptor>();
    const collect = (t: Tree) => {
      for (const b of t.blobs) blobs.set(b.digest, b);
      t.children.forEach(collect);
    };
    trees.forEach(collect);
    const result: ReplicateResult = {
      digest: trees[0]?.digest ?? ('' as Digest),
      manifests: 0,
      referrers: 0,
      blobs: { total: blobs.size, present: 0, mounted: 0, copied: 0, resumed: 0 },
      totalBytes: [...blobs.values()].reduce((a, b) => a + b.size, 0),
      bytesSent: 0,
    };
    let done = 0;
    const progress = (n: number) => {
      done += n;
      req.onProgress?.(done, result.totalBytes);
    };
    req.onProgress?.(0, result.totalBytes);
    await pool([...blobs.values()], this.opts.concurrency ?? 3, async (b) => {
      const outcome = await this.withRetries(`blob ${b.digest}`, req.signal, log, () => this.copyBlob(req.sourceRepo, req.targetRepo, b, req.signal, progress, result));
      result.blobs[outcome] += 1;
    });
    return result;
  }

  private async putTree(req: Pick<ReplicateRequest, 'targetRepo' | 'signal' | 'onLog'>, t: Tree, tags: string[], result: ReplicateResult): Promise<void> {
    for (const c of t.children) await this.putTree(req, c, [], result);
    await this.withRetries(`manifest ${t.digest}`, req.signal, req.onLog ?? (() => {}), () => this.putManifest(req.targetRepo, t, tags));
    result.manifests += 1;
  }

  /** Puts the referrers `pick` selects, then lists all of each subject's under the fallback tag where needed. */
  private async putReferrers(req: Pick<ReplicateRequest, 'targetRepo' | 'signal' | 'onLog'>, bySubject: Map<Digest, Tree[]>, pick: (r: Tree) => boolean, result: ReplicateResult): Promise<void> {
    for (const [subject, refs] of bySubject) {
      const chosen = refs.filter(pick);
      if (chosen.length === 0) continue;
      for (const r of chosen) await this.putTree(req, r, [], result);
      result.referrers += chosen.length;
      await this.ensureReferrersVisible(req.targetRepo, subject, refs);
    }
  }

  private async targetHasManifest(repo: string, digest: Digest): Promise<boolean> {
    const res = await this.target.send('HEAD', `/v2/${repo}/manifests/${digest}`, { accept: MANIFEST_ACCEPT });
    res.body.resume();
    return res.status === 200;
  }

  private async fetchTree(repo: string, reference: string, depth: number): Promise<Tree> {
    const m = await this.source.getManifest(repo, reference);
    const parsed = parseManifest(m.body, m.mediaType);
    const children: Tree[] = [];
    if (depth < 3) for (const c of parsed.manifests) children.push(await this.fetchTree(repo, c.digest, depth + 1));
    return { digest: m.digest, mediaType: parsed.mediaType, body: m.body, children, blobs: parsed.blobs };
  }

  /**
   * Referrers (signatures, SBOMs) of each subject through the source's referrers API, and theirs
   * (a signature of an SBOM) two levels down; by subject, in the order they must be put.
   */
  private async fetchReferrers(repo: string, subjects: Digest[]): Promise<Map<Digest, Tree[]>> {
    const out = new Map<Digest, Tree[]>();
    const seen = new Set<string>(subjects);
    let level = subjects;
    for (let depth = 0; depth < 2 && level.length > 0; depth++) {
      const next: Digest[] = [];
      for (const subject of level) {
        const res = await this.source.send('GET', `/v2/${repo}/referrers/${subject}`, { accept: OCI_INDEX });
        if (res.status !== 200) {
          res.body.resume();
          continue;
        }
        const index = JSON.parse((await readStream(res.body, 4 * 1024 * 1024)).toString()) as { manifests?: Descriptor[] };
        const refs: Tree[] = [];
        for (const d of index.manifests ?? []) {
          if (seen.has(d.digest)) continue;
          seen.add(d.digest);
          refs.push(await this.fetchTree(repo, d.digest, 1));
          next.push(d.digest);
        }
        if (refs.length > 0) out.set(subject, refs);
      }
      level = next;
    }
    return out;
  }

  /**
   * A target without the referrers API (Distribution 2.8) gets the spec's fallback: an index of
   * the referrers under the tag "<alg>-<hex>" of the subject.
   */
  private async ensureReferrersVisible(repo: string, subject: Digest, referrers: Tree[]): Promise<void> {
    const res = await this.target.send('GET', `/v2/${repo}/referrers/${subject}`, { accept: OCI_INDEX });
    res.body.resume();
    if (res.status === 200) return;
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: referrers.map((r) => {
          const doc = JSON.parse(r.body.toString()) as { artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> };
          return { mediaType: r.mediaType, digest: r.digest, size: r.body.length, artifactType: doc.artifactType ?? doc.config?.mediaType, ...(doc.annotations ? { annotations: doc.annotations } : {}) };
        }),
      }),
    );
    const put = await this.target.send('PUT', `/v2/${repo}/manifests/${subject.replace(':', '-')}`, { 'content-type': OCI_INDEX }, index);
    if (put.status !== 201) throw await targetError(put, `PUT referrers fallback tag for ${subject}`);
    put.body.resume();
  }

  private async putManifest(repo: string, t: Tree, tags: string[]): Promise<void> {
    for (const ref of [t.digest, ...tags]) {
      const res = await this.target.send('PUT', `/v2/${repo}/manifests/${ref}`, { 'content-type': t.mediaType }, t.body);
      if (res.status !== 201) throw await targetError(res, `PUT manifest ${repo}:${ref}`);
      res.body.resume();
      const echoed = res.headers['docker-content-digest'];
      if (echoed && echoed !== t.digest) throw new RegistryError('DIGEST_INVALID', `target stored manifest ${repo}:${ref} as ${String(echoed)}, expected ${t.digest}`);
    }
  }

  private async copyBlob(
    sourceRepo: string,
    repo: string,
    b: Descriptor,
    signal: AbortSignal | undefined,
    progress: (n: number) => void,
    result: ReplicateResult,
  ): Promise<'present' | 'mounted' | 'copied' | 'resumed'> {
    const head = await this.target.headBlob(repo, b.digest);
    if (head.status === 200) {
      this.knownOnTarget.set(b.digest, repo);
      progress(b.size);
      return 'present';
    }
    const key = `${this.target.base} ${repo} ${b.digest}`;
    let location: string | undefined;
    let offset = 0;
    let resumed = false;
    const saved = await this.opts.journal.get(key);
    if (saved) {
      const status = await this.target.send('GET', pathOf(saved.location));
      status.body.resume();
      if (status.status === 204 || status.status === 200) {
        location = String(status.headers.location ?? saved.location);
        offset = confirmedOffset(status.headers.range, saved.offset);
        resumed = offset > 0;
      } else {
        await this.opts.journal.delete(key); // gone on the target (expired, cancelled): start afresh
      }
    }
    if (!location) {
      const from = this.knownOnTarget.get(b.digest);
      const query = `mount=${encodeURIComponent(b.digest)}${from && from !== repo ? `&from=${encodeURIComponent(from)}` : ''}`;
      const start = await this.target.send('POST', `/v2/${repo}/blobs/uploads/?${query}`, { 'content-length': '0' });
      start.body.resume();
      if (start.status === 201) {
        this.knownOnTarget.set(b.digest, repo);
        progress(b.size);
        return 'mounted';
      }
      if (start.status !== 202 || !start.headers.location) throw await targetError(start, `POST upload for ${b.digest}`);
      location = String(start.headers.location);
      await this.opts.journal.put(key, { location, offset: 0, size: b.size, updatedAt: Date.now() });
    }
    progress(offset);
    if (offset < b.size) {
      const src = await this.source.getBlob(sourceRepo, b.digest, offset > 0 ? { range: `bytes=${offset}-` } : {});
      if (src.status !== (offset > 0 ? 206 : 200)) throw await targetError(src, `GET source blob ${sourceRepo}@${b.digest} from ${offset}`);
      try {
        for await (const chunk of chunks(src.body, this.chunkSize)) {
          signal?.throwIfAborted();
          const end = offset + chunk.length - 1;
          const res = await this.target.send('PATCH', pathOf(location), { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(chunk.length) }, chunk);
          res.body.resume();
          if (res.status !== 202) throw await targetError(res, `PATCH ${b.digest} ${offset}-${end}`);
          result.bytesSent += chunk.length;
          const confirmed = confirmedOffset(res.headers.range, end + 1);
          if (confirmed !== end + 1) throw new Error(`target confirmed ${confirmed} bytes of ${b.digest}, expected ${end + 1}`);
          location = String(res.headers.location ?? location);
          offset = confirmed;
          await this.opts.journal.put(key, { location, offset, size: b.size, updatedAt: Date.now() });
          progress(chunk.length);
        }
      } finally {
        src.body.destroy();
      }
    }
    if (offset !== b.size) throw new Error(`source sent ${offset} of ${b.size} bytes of ${b.digest}`);
    const sep = location.includes('?') ? '&' : '?';
    const fin = await this.target.send('PUT', `${pathOf(location)}${sep}digest=${encodeURIComponent(b.digest)}`, { 'content-length': '0' });
    fin.body.resume();
    if (fin.status !== 201) throw await targetError(fin, `PUT (commit) ${b.digest}`);
    await this.opts.journal.delete(key);
    // The target hashed every byte at commit; check that it now holds exactly this blob.
    const check = await this.target.headBlob(repo, b.digest);
    if (check.status !== 200 || Number(check.headers['content-length']) !== b.size) {
      throw new RegistryError('DIGEST_INVALID', `target does not hold ${b.digest} (${b.size} bytes) after commit: HEAD ${check.status}`);
    }
    this.knownOnTarget.set(b.digest, repo);
    return resumed ? 'resumed' : 'copied';
  }

  private async withRetries<T>(what: string, signal: AbortSignal | undefined, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.attempts ?? 3;
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (i >= attempts || signal?.aborted || !isRetryable(err)) throw err;
        const delay = backoffDelay(this.opts.backoffMs ?? 500, i);
        log(`${what}: attempt ${i} failed (${(err as Error).message}); retrying in ${delay} ms`);
        await sleepUnlessAborted(delay, signal);
      }
    }
  }
}

function isRetryable(err: unknown): boolean {
  return !(err instanceof RegistryError && (err.code === 'DIGEST_INVALID' || err.code === 'MANIFEST_INVALID' || err.code === 'DENIED'));
}

/** Upload URLs come back absolute (Distribution) or as paths (Shoal): keep path and query. */
export function pathOf(location: string): string {
  if (location.startsWith('/')) return location;
  const u = new URL(location);
  return `${u.pathname}${u.search}`;
}

/** "0-N" means N+1 bytes; "0-0" is ambiguous (Distribution says it for 0 and 1), so trust what we knew. */
export function confirmedOffset(range: string | string[] | undefined, expected: number): number {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(String(range ?? ''));
  if (!m) return 0;
  const end = Number(m[1]);
  if (end === 0) return expected <= 1 ? expected : 0;
  return end + 1;
}

/** Re-chunks a byte stream into buffers of exactly `size` (the last one shorter). */
export async function* chunks(body: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const piece of body) {
    let buf = piece as Buffer;
    while (buf.length > 0) {
      const take = Math.min(size - have, buf.length);
      parts.push(buf.subarray(0, take));
      have += take;
      buf = buf.subarray(take);
      if (have === size) {
        yield Buffer.concat(parts, have);
        parts = [];
        have = 0;
      }
    }
  }
  if (have > 0) yield Buffer.concat(parts, have);
}

/** The digests of a manifest tree: the image, and an index's platform manifests. */
function manifestDigests(t: Tree): Digest[] {
  return [t.digest, ...t.children.flatMap(manifestDigests)];
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

async function targetError(res: BlobResponse, what: string): Promise<Error> {
  let body = '';
  try {
    body = (await readStream(res.body, 64 * 1024)).toString().slice(0, 500);
  } catch {
    /* body unreadable */
  }
  return new Error(`${what}: answered ${res.status} ${body}`);
}
