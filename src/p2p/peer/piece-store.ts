// The peer's disk: partial downloads (sparse file + bitfield per task) and complete, verified
// blobs with their piece manifests, plus a size quota enforced by evicting the least recently
// used complete blobs.
//
// Layout under root:
//   blobs/<alg>/<hex>                 complete blobs (only ever renamed into place, verified)
//   manifests/<alg>/<hex>.json        the piece manifest each complete blob is served with
//   tasks/<alg>-<hex>/{data,bitfield,manifest.json}   partial downloads (data is sparse)
//   tmp/                              whole-blob writes in progress (emptied at open)
import { EventEmitter } from 'node:events';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseDigest, type Digest } from '../../oci/digest.js';
import { pieceSizeFor, type PieceManifest } from '../protocol.js';
import { Bitfield } from './bitfield.js';
import { PeerError } from './errors.js';
import { ManifestHasher, READ_CHUNK, buildManifest, sameManifest, validateManifest } from './manifest.js';
import { PieceTask, parsePersistedBitfield, type TaskHost } from './piece-task.js';

const WRITE_CHUNK = 1024 * 1024;
/** On-disk mtime is refreshed at most this often per blob (it seeds the LRU order after a restart). */
const TOUCH_PERSIST_MS = 60_000;

export interface PieceStoreOptions {
  /** Bytes allowed for complete blobs plus partial tasks; 0/undefined = no quota. */
  quotaBytes?: number;
  /** fsync piece data before marking it held (default true). Tests may turn it off for speed. */
  durable?: boolean;
  /** Blobs used more recently than this are never evicted (default 60 s): they are probably being read. */
  minEvictAgeMs?: number;
}

export interface PieceStoreEvents {
  /** A task was opened (created or resumed): lets a bitfield long-poll wait for a task to appear. */
  task: [task: PieceTask];
  /** A blob became complete (downloaded and finalized, or written whole). */
  complete: [digest: Digest];
  /** A complete blob was evicted. */
  evicted: [digest: Digest, size: number];
}

interface CompleteEntry {
  size: number;
  lastUsed: number;
  lastPersistedTouch: number;
}

export interface GcResult {
  evicted: Digest[];
  freedBytes: number;
  usedBytes: number;
}

export class PieceStore extends EventEmitter<PieceStoreEvents> implements TaskHost {
  readonly root: string;
  readonly durable: boolean;
  private readonly quotaBytes: number;
  private readonly minEvictAgeMs: number;
  private readonly tasks = new Map<Digest, PieceTask>();
  private readonly opening = new Map<Digest, Promise<PieceTask>>();
  private readonly completeIndex = new Map<Digest, CompleteEntry>();
  private gcRunning: Promise<GcResult> | null = null;

  private constructor(root: string, opts: PieceStoreOptions) {
    super();
    this.root = root;
    this.durable = opts.durable ?? true;
    this.quotaBytes = opts.quotaBytes ?? 0;
    this.minEvictAgeMs = opts.minEvictAgeMs ?? 60_000;
    this.setMaxListeners(0);
  }

  /** Creates the layout, clears tmp/, and indexes complete blobs (LRU seeded from mtimes). */
  static async open(root: string, opts: PieceStoreOptions = {}): Promise<PieceStore> {
    const store = new PieceStore(root, opts);
    await rm(join(root, 'tmp'), { recursive: true, force: true });
    await Promise.all(
      ['blobs/sha256', 'blobs/sha512', 'manifests/sha256', 'manifests/sha512', 'tasks', 'tmp'].map((d) => mkdir(join(root, d), { recursive: true })),
    );
    for (const algorithm of ['sha256', 'sha512'] as const) {
      for (const hex of await readdirOrEmpty(join(root, 'blobs', algorithm))) {
        const digest = `${algorithm}:${hex}` as Digest;
        try {
          parseDigest(digest);
          const s = await stat(join(root, 'blobs', algorithm, hex));
          store.completeIndex.set(digest, { size: s.size, lastUsed: s.mtimeMs, lastPersistedTouch: s.mtimeMs });
        } catch {
          /* a foreign file: leave it alone */
        }
      }
    }
    return store;
  }

  // ---- paths -------------------------------------------------------------------------------

  finalPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex);
  }

  private manifestPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'manifests', algorithm, `${hex}.json`);
  }

  private taskDir(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'tasks', `${algorithm}-${hex}`);
  }

  // ---- tasks ---------------------------------------------------------------------------------

  /**
   * Opens the task for this manifest: the already-open one, a complete blob (all pieces held),
   * a partial download resumed from disk (same manifest), or a fresh sparse file. A partial
   * download made under a different manifest (other piece size) is discarded.
   */
  openTask(manifest: PieceManifest): Promise<PieceTask> {
    const m = validateManifest(manifest);
    let open = this.tasks.get(m.digest);
    if (open?.state === 'closed') {
      this.tasks.delete(m.digest);
      open = undefined;
    }
    if (open) {
      if (sameManifest(open.manifest, m)) return Promise.resolve(open);
      if (open.isComplete) return this.reopenComplete(m);
      return Promise.reject(new PeerError('MANIFEST_INVALID', `task ${m.digest} is open with a different piece manifest`));
    }
    let pending = this.opening.get(m.digest);
    if (!pending) {
      pending = this.doOpenTask(m).finally(() => this.opening.delete(m.digest));
      this.opening.set(m.digest, pending);
    }
    return pending;
  }

  private async reopenComplete(m: PieceManifest): Promise<PieceTask> {
    // A complete blob can be served under any piece size: the bytes are verified as a whole.
    const entry = this.completeIndex.get(m.digest);
    if (!entry || entry.size !== m.size) throw new PeerError('MANIFEST_INVALID', `manifest size ${m.size} does not match the stored blob ${m.digest}`);
    const stored = await this.getStoredManifest(m.digest);
    if (!stored || !sameManifest(stored, m)) await writeFileDurably(this.manifestPath(m.digest), JSON.stringify(m), join(this.root, 'tmp'), this.durable);
    const task = new PieceTask(this, m, null, Bitfield.full(m.pieceDigests.length), null);
    this.tasks.set(m.digest, task);
    return task;
  }

  private async doOpenTask(m: PieceManifest): Promise<PieceTask> {
    if (this.completeIndex.has(m.digest)) return this.reopenComplete(m);
    const dir = this.taskDir(m.digest);
    const files = { dir, data: join(dir, 'data'), bitfield: join(dir, 'bitfield') };
    const manifestFile = join(dir, 'manifest.json');
    let bits: Bitfield | null = null;
    const stored = await readFileOrNull(manifestFile);
    if (stored !== null) {
      try {
        if (sameManifest(validateManifest(JSON.parse(stored)), m)) bits = parsePersistedBitfield(await readFileOrNull(files.bitfield), m.pieceDigests.length);
      } catch {
        /* unreadable manifest: start over */
      }
    }
    let fh;
    if (bits) {
      try {
        fh = await open(files.data, 'r+');
        if ((await fh.stat()).size !== m.size) await fh.truncate(m.size);
      } catch (err) {
        await fh?.close().catch(() => undefined);
        fh = undefined;
        bits = null;
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    if (!bits || !fh) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      fh = await open(files.data, 'w+');
      // Sparse: no blocks are allocated until pieces land.
      await fh.truncate(m.size);
      await writeFile(manifestFile, JSON.stringify(m));
      bits = new Bitfield(m.pieceDigests.length);
    }
    const task = new PieceTask(this, m, files, bits, fh);
    this.tasks.set(m.digest, task);
    task.once('complete', () => this.emit('complete', m.digest));
    this.emit('task', task);
    return task;
  }

  /** The open task for a digest, if any (partial or complete). */
  getTask(digest: Digest): PieceTask | undefined {
    return this.tasks.get(digest);
  }

  /**
   * What a peer can serve for a digest: the open task, or a complete blob with its stored
   * manifest (opened on demand). Null when neither exists.
   */
  async lookup(digest: Digest): Promise<PieceTask | null> {
    const open = this.tasks.get(digest);
    if (open) return open;
    const pending = this.opening.get(digest);
    if (pending) return pending;
    if (!this.completeIndex.has(digest)) return null;
    const manifest = await this.getManifest(digest);
    if (!manifest) return null;
    return this.tasks.get(digest) ?? this.openTask(manifest);
  }

  /** Digests of partial downloads on disk (to resume or clean up after a restart). */
  async listPartial(): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const name of await readdirOrEmpty(join(this.root, 'tasks'))) {
      const m = /^(sha256|sha512)-([a-f0-9]+)$/.exec(name);
      if (m) out.push(`${m[1]}:${m[2]}` as Digest);
    }
    return out;
  }

  /** The manifest of a complete blob, or of a partial task on disk. */
  async getManifest(digest: Digest): Promise<PieceManifest | null> {
    const open = this.tasks.get(digest);
    if (open) return open.manifest;
    return this.getStoredManifest(digest);
  }

  private async getStoredManifest(digest: Digest): Promise<PieceManifest | null> {
    for (const file of [this.manifestPath(digest), join(this.taskDir(digest), 'manifest.json')]) {
      const text = await readFileOrNull(file);
      if (text === null) continue;
      try {
        const m = validateManifest(JSON.parse(text));
        if (m.digest === digest) return m;
      } catch {
        /* corrupt: ignore */
      }
    }
    return null;
  }

  /** Closes a task's file and forgets it (its partial state stays on disk for a later openTask). */
  async closeTask(digest: Digest): Promise<void> {
    const task = this.tasks.get(digest);
    if (!task) return;
    this.tasks.delete(digest);
    await task.close();
  }

  /** Abandons a partial download: closes it and deletes its files. A complete blob is left alone. */
  async removeTask(digest: Digest): Promise<void> {
    const task = this.tasks.get(digest);
    if (task && !task.isComplete) {
      await task.close();
      this.tasks.delete(digest);
    }
    await rm(this.taskDir(digest), { recursive: true, force: true });
  }

  /** @internal TaskHost: writes the manifest, then renames the verified data file into place. */
  async promote(task: PieceTask, dataFile: string): Promise<string> {
    await writeFileDurably(this.manifestPath(task.digest), JSON.stringify(task.manifest), join(this.root, 'tmp'), this.durable);
    const target = this.finalPath(task.digest);
    await rename(dataFile, target);
    if (this.durable) await fsyncDir(join(target, '..'));
    this.indexComplete(task.digest, task.manifest.size);
    return target;
  }

  // ---- complete blobs ------------------------------------------------------------------------

  hasComplete(digest: Digest): boolean {
    return this.completeIndex.has(digest);
  }

  /** Digests of every complete blob held (a seed reports these in its heartbeats). */
  completeDigests(): Digest[] {
    return [...this.completeIndex.keys()];
  }

  /** Size of a complete blob, or null. */
  completeSize(digest: Digest): number | null {
    return this.completeIndex.get(digest)?.size ?? null;
  }

  /** Opens a complete blob for reading, optionally a byte range [start, end] (inclusive). Null when absent. */
  async openComplete(digest: Digest, range?: { start: number; end: number }): Promise<{ stream: Readable; size: number; length: number } | null> {
    if (!this.completeIndex.has(digest)) return null;
    let fh;
    try {
      fh = await open(this.finalPath(digest), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.completeIndex.delete(digest);
        return null;
      }
      throw err;
    }
    const size = (await fh.stat()).size;
    const start = range?.start ?? 0;
    const end = Math.min(size - 1, range?.end ?? size - 1);
    if (start < 0 || (size > 0 && start > end) || (range && start >= size)) {
      await fh.close();
      throw new PeerError('PIECE_OUT_OF_RANGE', `range ${start}-${range?.end} is outside blob ${digest} of ${size} bytes`);
    }
    this.touch(digest);
    const length = size === 0 ? 0 : end - start + 1;
    if (length === 0) {
      await fh.close();
      return { stream: Readable.from([]), size, length };
    }
    return { stream: fh.createReadStream({ start, end, highWaterMark: Math.min(READ_CHUNK, length), autoClose: true }), size, length };
  }

  /**
   * Streams a whole blob (e.g. from the registry, back-to-source) into the store: hashes it as it
   * lands (whole digest + sha256 per piece), fsyncs, verifies, then renames it into place and
   * returns its piece manifest. Nothing is visible unless the digest matched. An open partial
   * task for the digest switches to the complete blob (its waiting readers wake up).
   */
  async writeCompleteBlob(
    digest: Digest,
    source: Readable | AsyncIterable<Uint8Array>,
    opts: { pieceSize?: number; expectedSize?: number; signal?: AbortSignal } = {},
  ): Promise<PieceManifest> {
    parseDigest(digest);
    const pieceSize = opts.pieceSize ?? pieceSizeFor(opts.expectedSize ?? 0);
    const hasher = new ManifestHasher(digest, pieceSize);
    const tmp = join(this.root, 'tmp', randomUUID());
    const limit = opts.expectedSize;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (limit !== undefined && hasher.size + chunk.length > limit) {
          done(new PeerError('SIZE_MISMATCH', `blob ${digest} is larger than the expected ${limit} bytes`));
          return;
        }
        hasher.update(chunk);
        done(null, chunk);
      },
    });
    try {
      const src = source instanceof Readable ? source : Readable.from(source, { objectMode: false });
      await pipeline(src, meter, createWriteStream(tmp, { highWaterMark: WRITE_CHUNK }), { signal: opts.signal });
      if (limit !== undefined && hasher.size !== limit) throw new PeerError('SIZE_MISMATCH', `blob ${digest} is ${hasher.size} bytes, expected ${limit}`);
      const manifest = hasher.finish();
      await this.installComplete(digest, tmp, manifest);
      return manifest;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Takes a blob file that exists elsewhere on disk (e.g. a seed's registry storage): verifies
   * it while building its manifest, then moves (same filesystem, `move: true`) or copies it in.
   */
  async adoptCompleteFile(digest: Digest, file: string, opts: { pieceSize?: number; move?: boolean } = {}): Promise<PieceManifest> {
    const manifest = await buildManifest(digest, file, opts.pieceSize);
    const tmp = join(this.root, 'tmp', randomUUID());
    try {
      let moved = false;
      if (opts.move) {
        try {
          await rename(file, tmp);
          moved = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        }
      }
      if (!moved) await copyFile(file, tmp);
      await this.installComplete(digest, tmp, manifest);
      return manifest;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async installComplete(digest: Digest, tmp: string, manifest: PieceManifest): Promise<void> {
    if (this.durable) {
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await writeFileDurably(this.manifestPath(digest), JSON.stringify(manifest), join(this.root, 'tmp'), this.durable);
    const target = this.finalPath(digest);
    await rename(tmp, target);
    if (this.durable) await fsyncDir(join(target, '..'));
    this.indexComplete(digest, manifest.size);
    const task = this.tasks.get(digest);
    if (task && !task.isComplete) {
      // Readers streaming from the partial task continue from the complete blob.
      task.adoptComplete();
      await task.close();
      await rm(this.taskDir(digest), { recursive: true, force: true });
    }
    this.emit('complete', digest);
  }

  private indexComplete(digest: Digest, size: number): void {
    const now = Date.now();
    this.completeIndex.set(digest, { size, lastUsed: now, lastPersistedTouch: now });
    if (this.quotaBytes > 0) void this.gc().catch(() => undefined);
  }

  /** Marks a complete blob as recently used (serving a piece or a read calls this). */
  touch(digest: Digest): void {
    const e = this.completeIndex.get(digest);
    if (!e) return;
    e.lastUsed = Date.now();
    if (e.lastUsed - e.lastPersistedTouch > TOUCH_PERSIST_MS) {
      e.lastPersistedTouch = e.lastUsed;
      const t = new Date(e.lastUsed);
      void utimes(this.finalPath(digest), t, t).catch(() => undefined);
    }
  }

  /** Deletes a complete blob (and its manifest). Returns false when it was not stored. */
  async evict(digest: Digest): Promise<boolean> {
    const e = this.completeIndex.get(digest);
    this.completeIndex.delete(digest);
    const task = this.tasks.get(digest);
    if (task?.isComplete) this.tasks.delete(digest);
    let removed = false;
    try {
      await unlink(this.finalPath(digest));
      removed = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await rm(this.manifestPath(digest), { force: true });
    if (removed) this.emit('evicted', digest, e?.size ?? 0);
    return removed;
  }

  /** Bytes used by complete blobs plus the full size of open partial tasks. */
  usedBytes(): number {
    let used = 0;
    for (const e of this.completeIndex.values()) used += e.size;
    for (const t of this.tasks.values()) if (!t.isComplete) used += t.manifest.size;
    return used;
  }

  /**
   * Evicts least recently used complete blobs until usage fits the quota. Blobs used within
   * minEvictAgeMs and blobs in `keep` are spared, so the quota may stay exceeded for a while.
   */
  gc(opts: { quotaBytes?: number; keep?: ReadonlySet<Digest> } = {}): Promise<GcResult> {
    if (this.gcRunning) return this.gcRunning;
    this.gcRunning = this.runGc(opts).finally(() => (this.gcRunning = null));
    return this.gcRunning;
  }

  private async runGc(opts: { quotaBytes?: number; keep?: ReadonlySet<Digest> }): Promise<GcResult> {
    const quota = opts.quotaBytes ?? this.quotaBytes;
    const result: GcResult = { evicted: [], freedBytes: 0, usedBytes: this.usedBytes() };
    if (!quota || result.usedBytes <= quota) return result;
    const cutoff = Date.now() - this.minEvictAgeMs;
    const candidates = [...this.completeIndex.entries()]
      .filter(([d, e]) => e.lastUsed <= cutoff && !opts.keep?.has(d))
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [digest, e] of candidates) {
      if (result.usedBytes <= quota) break;
      if (await this.evict(digest)) {
        result.evicted.push(digest);
        result.freedBytes += e.size;
        result.usedBytes -= e.size;
      }
    }
    return result;
  }

  /** Closes every open task (partial state stays on disk for a resume). */
  async close(): Promise<void> {
    await this.gcRunning?.catch(() => undefined);
    await Promise.allSettled([...this.opening.values()]);
    await Promise.all([...this.tasks.values()].map((t) => t.close()));
    this.tasks.clear();
  }
}

async function writeFileDurably(path: string, body: string, tmpDir: string, durable: boolean): Promise<void> {
  const tmp = join(tmpDir, randomUUID());
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(body);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readFileOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export { buildManifest } from './manifest.js';
