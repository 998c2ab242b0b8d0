// One blob on its way to (or already in) the piece store. While partial, its bytes live in a
// sparse file of the blob's size under tasks/<alg>-<hex>/data and a bitfield beside it names the
// pieces that were verified and synced. Pieces are checked against the manifest BEFORE they are
// written, so a held bit always means "these bytes hash to the piece digest".
import { EventEmitter } from 'node:events';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Digest } from '../../oci/digest.js';
import { parseDigest } from '../../oci/digest.js';
import type { PieceManifest } from '../protocol.js';
import { Bitfield } from './bitfield.js';
import { PeerError } from './errors.js';
import { ManifestHasher, pieceBounds } from './manifest.js';
import { abortReason } from './clock.js';

const READ_CHUNK = 1024 * 1024;

export type PieceTaskState = 'partial' | 'finalizing' | 'complete' | 'closed';

export interface PieceTaskEvents {
  /** A verified piece became readable. */
  piece: [index: number];
  /** The blob is complete at its final path. */
  complete: [path: string];
}

/** What the task needs from its store: where things go and what to do when it completes. */
export interface TaskHost {
  readonly durable: boolean;
  /** Writes the manifest of a complete blob and moves the data file into place (fsynced). */
  promote(task: PieceTask, dataFile: string): Promise<string>;
  /** Final path of the blob (valid once complete). */
  finalPath(digest: Digest): string;
}

export interface TaskFiles {
  dir: string;
  data: string;
  bitfield: string;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class PieceTask extends EventEmitter<PieceTaskEvents> {
  readonly digest: Digest;
  readonly manifest: PieceManifest;
  readonly numPieces: number;
  private readonly bits: Bitfield;
  private fh: FileHandle | null;
  private taskState: PieceTaskState;
  private readonly writing = new Map<number, Promise<boolean>>();
  private readonly waiters = new Map<number, Set<Waiter>>();
  private persisting: Promise<void> | null = null;
  private persistDirty = false;
  private finalizing: Promise<string> | null = null;
  /** Bumped when the bytes move to a different inode (a whole blob written beside us), so open readers re-open. */
  private generation = 0;

  /** @internal Created by PieceStore only. */
  constructor(
    private readonly host: TaskHost,
    manifest: PieceManifest,
    private readonly files: TaskFiles | null,
    bits: Bitfield,
    fh: FileHandle | null,
  ) {
    super();
    this.digest = manifest.digest;
    this.manifest = manifest;
    this.numPieces = manifest.pieceDigests.length;
    this.bits = bits;
    this.fh = fh;
    this.taskState = fh ? 'partial' : 'complete';
    // Many readers may wait on one task (streaming clients, long-polls); that is not a leak.
    this.setMaxListeners(0);
  }

  get state(): PieceTaskState {
    return this.taskState;
  }

  /** The live bitfield of held pieces. Read it; do not mutate it. */
  get bitfield(): Bitfield {
    return this.bits;
  }

  /** True once the blob sits verified at its final path. */
  get isComplete(): boolean {
    return this.taskState === 'complete';
  }

  /** True when every piece is held (finalize() may still be pending). */
  get allHeld(): boolean {
    return this.bits.isComplete();
  }

  has(index: number): boolean {
    return this.bits.has(index);
  }

  pieceLength(index: number): number {
    this.checkIndex(index);
    return pieceBounds(this.manifest, index).length;
  }

  pieceOffset(index: number): number {
    this.checkIndex(index);
    return pieceBounds(this.manifest, index).offset;
  }

  /**
   * Verifies `data` against the manifest and, only if it matches, writes and syncs it and marks
   * the piece held. Returns false when the piece was already held. Throws PIECE_DIGEST_MISMATCH /
   * PIECE_SIZE_MISMATCH (nothing written) or TASK_CLOSED.
   */
  async writePiece(index: number, data: Uint8Array): Promise<boolean> {
    this.checkIndex(index);
    for (;;) {
      if (this.bits.has(index) || this.taskState === 'complete' || this.taskState === 'finalizing') return false;
      if (this.taskState === 'closed') throw new PeerError('TASK_CLOSED', `task ${this.digest} is closed`);
      const pending = this.writing.get(index);
      if (!pending) break;
      // Another copy of this piece is being written (endgame); if that one fails, ours may still count.
      await pending.catch(() => undefined);
    }
    const { offset, length } = pieceBounds(this.manifest, index);
    if (data.length !== length) {
      throw new PeerError('PIECE_SIZE_MISMATCH', `piece ${index} of ${this.digest} is ${length} bytes, got ${data.length}`, { detail: { index, expected: length, actual: data.length } });
    }
    const expected = this.manifest.pieceDigests[index]!;
    const algorithm = parseDigest(expected).algorithm;
    const actual = `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
    if (actual !== expected) {
      throw new PeerError('PIECE_DIGEST_MISMATCH', `piece ${index} of ${this.digest} hashes to ${actual}, not ${expected}`, { detail: { index, expected, actual } });
    }
    const write = this.writeVerified(index, offset, data);
    this.writing.set(index, write);
    try {
      return await write;
    } finally {
      this.writing.delete(index);
    }
  }

  private async writeVerified(index: number, offset: number, data: Uint8Array): Promise<boolean> {
    const fh = this.fh;
    if (!fh) return false;
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      // Sync before the bit is set (and persisted), so a persisted bit never names unsynced bytes.
      if (this.host.durable && data.length > 0) await fh.datasync();
    } catch (err) {
      // The file was closed under us because the blob completed another way: not an error.
      if (this.taskState !== 'partial') return false;
      throw err;
    }
    if (this.taskState !== 'partial') return false;
    if (!this.bits.set(index)) return false;
    this.schedulePersist();
    this.wake(index);
    this.emit('piece', index);
    return true;
  }

  /** Reads a held piece into memory. Prefer createPieceStream for serving. */
  async readPiece(index: number): Promise<Buffer> {
    this.requireHeld(index);
    const { offset, length } = pieceBounds(this.manifest, index);
    const fh = await this.openForRead();
    try {
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new PeerError('PIECE_NOT_HELD', `piece ${index} of ${this.digest} is truncated on disk`);
        done += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  /** A stream of a held piece's bytes (or a sub-range of it, offsets relative to the piece). */
  async createPieceStream(index: number, opts: { start?: number; end?: number } = {}): Promise<Readable> {
    this.requireHeld(index);
    const { offset, length } = pieceBounds(this.manifest, index);
    const start = offset + (opts.start ?? 0);
    const end = offset + Math.min(length - 1, opts.end ?? length - 1);
    const fh = await this.openForRead();
    if (length === 0 || end < start) {
      await fh.close();
      return Readable.from([]);
    }
    return fh.createReadStream({ start, end, highWaterMark: Math.min(READ_CHUNK, end - start + 1), autoClose: true });
  }

  /** Resolves when piece `index` is held; rejects with TASK_CLOSED, an abort reason, or what failWaiters() passes. */
  waitForPiece(index: number, signal?: AbortSignal): Promise<void> {
    this.checkIndex(index);
    if (this.bits.has(index)) return Promise.resolve();
    if (this.taskState === 'closed') return Promise.reject(new PeerError('TASK_CLOSED', `task ${this.digest} is closed`));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      let set = this.waiters.get(index);
      if (!set) this.waiters.set(index, (set = new Set()));
      const onAbort = () => {
        set!.delete(waiter);
        reject(abortReason(signal!));
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Rejects everyone waiting for a piece (e.g. the download failed and the caller falls back). */
  failWaiters(err: Error): void {
    for (const set of this.waiters.values()) for (const w of set) w.reject(err);
    this.waiters.clear();
  }

  /**
   * The blob's bytes [start, end] in order, waiting for each piece as it arrives: lets an agent
   * stream a layer to containerd while the download is still running.
   */
  createReadStream(opts: { start?: number; end?: number; signal?: AbortSignal } = {}): Readable {
    const size = this.manifest.size;
    const start = opts.start ?? 0;
    const end = Math.min(size - 1, opts.end ?? size - 1);
    const ps = this.manifest.pieceSize;
    const task = this;
    async function* bytes(): AsyncGenerator<Buffer> {
      let fh: FileHandle | null = null;
      let gen = -1;
      try {
        for (let i = Math.floor(start / ps); start <= end && i <= Math.floor(end / ps); i++) {
          await task.waitForPiece(i, opts.signal);
          if (!fh || gen !== task.generation) {
            await fh?.close();
            gen = task.generation;
            fh = await task.openForRead();
          }
          const to = Math.min(end, (i + 1) * ps - 1);
          for (let pos = Math.max(start, i * ps); pos <= to; ) {
            const len = Math.min(READ_CHUNK, to - pos + 1);
            const buf = Buffer.allocUnsafe(len);
            const { bytesRead } = await fh.read(buf, 0, len, pos);
            if (bytesRead === 0) throw new PeerError('PIECE_NOT_HELD', `blob ${task.digest} is truncated on disk at ${pos}`);
            pos += bytesRead;
            yield bytesRead === len ? buf : buf.subarray(0, bytesRead);
          }
        }
      } finally {
        await fh?.close();
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  /**
   * Once every piece is held: re-hashes the whole file against the blob digest (streaming),
   * fsyncs and moves it to blobs/<alg>/<hex>. The final path never holds a partial blob.
   * Throws BLOB_DIGEST_MISMATCH when all pieces match but the blob does not (a wrong manifest),
   * or PIECES_CORRUPT_ON_DISK after clearing pieces whose bytes changed on disk (re-fetch them).
   */
  finalize(): Promise<string> {
    if (this.taskState === 'complete') return Promise.resolve(this.host.finalPath(this.digest));
    if (this.finalizing) return this.finalizing;
    if (this.taskState === 'closed') return Promise.reject(new PeerError('TASK_CLOSED', `task ${this.digest} is closed`));
    if (!this.bits.isComplete()) {
      return Promise.reject(new PeerError('TASK_INCOMPLETE', `task ${this.digest} holds ${this.bits.count} of ${this.numPieces} pieces`));
    }
    this.finalizing = this.doFinalize().finally(() => (this.finalizing = null));
    return this.finalizing;
  }

  private async doFinalize(): Promise<string> {
    const fh = this.fh!;
    const files = this.files!;
    this.taskState = 'finalizing';
    try {
      await Promise.all(this.writing.values());
      await this.persisting;
      if (this.host.durable) await fh.sync();
      const hasher = new ManifestHasher(this.digest, this.manifest.pieceSize);
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, this.manifest.size)));
      for (let pos = 0; pos < this.manifest.size; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, this.manifest.size - pos), pos);
        if (bytesRead === 0) break;
        hasher.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      try {
        hasher.finish();
      } catch (err) {
        // Which is wrong, the disk or the manifest? Pieces that no longer match are the disk's fault.
        const bad = await this.reverifyPieces();
        if (bad.length > 0) {
          this.taskState = 'partial';
          this.schedulePersist();
          throw new PeerError('PIECES_CORRUPT_ON_DISK', `${bad.length} piece(s) of ${this.digest} changed on disk and were cleared for re-fetch`, { detail: { pieces: bad }, cause: err });
        }
        throw err;
      }
      await fh.close();
      this.fh = null;
      const path = await this.host.promote(this, files.data);
      this.taskState = 'complete';
      await rm(files.dir, { recursive: true, force: true });
      this.emit('complete', path);
      return path;
    } catch (err) {
      if (this.taskState === 'finalizing') this.taskState = this.fh ? 'partial' : 'closed';
      throw err;
    }
  }

  /** Re-hashes each held piece from disk; clears those that do not match. Returns their indices. */
  private async reverifyPieces(): Promise<number[]> {
    const bad: number[] = [];
    for (let i = 0; i < this.numPieces; i++) {
      const { offset, length } = pieceBounds(this.manifest, i);
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await this.fh!.read(buf, 0, length, offset);
      const expected = this.manifest.pieceDigests[i]!;
      const algorithm = parseDigest(expected).algorithm;
      if (bytesRead !== length || `${algorithm}:${createHash(algorithm).update(buf).digest('hex')}` !== expected) {
        this.bits.clear(i);
        bad.push(i);
      }
    }
    return bad;
  }

  /** @internal The store wrote the whole blob elsewhere (back-to-source); switch to it. */
  adoptComplete(): void {
    if (this.taskState === 'complete') return;
    const fh = this.fh;
    this.fh = null;
    void fh?.close().catch(() => undefined);
    this.taskState = 'complete';
    this.generation++;
    for (let i = 0; i < this.numPieces; i++) {
      if (this.bits.set(i)) {
        this.wake(i);
        this.emit('piece', i);
      }
    }
    this.emit('complete', this.host.finalPath(this.digest));
  }

  /** Closes the data file; the persisted state stays on disk for a later resume. Wakes waiters with TASK_CLOSED. */
  async close(): Promise<void> {
    if (this.taskState === 'closed') return;
    const wasPartial = this.taskState !== 'complete';
    if (wasPartial) this.taskState = 'closed';
    await Promise.allSettled(this.writing.values());
    await this.persisting;
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => undefined);
    if (wasPartial) this.failWaiters(new PeerError('TASK_CLOSED', `task ${this.digest} is closed`));
  }

  /** Opens the current data file for reading, following a concurrent finalize's rename. */
  async openForRead(): Promise<FileHandle> {
    for (;;) {
      const path = this.readPath();
      try {
        return await open(path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        if (this.readPath() === path) throw new PeerError('PIECE_NOT_HELD', `blob ${this.digest} is no longer stored`, { cause: err });
      }
    }
  }

  private readPath(): string {
    return this.taskState === 'complete' || !this.files ? this.host.finalPath(this.digest) : this.files.data;
  }

  private requireHeld(index: number): void {
    this.checkIndex(index);
    if (!this.bits.has(index)) throw new PeerError('PIECE_NOT_HELD', `piece ${index} of ${this.digest} is not held`);
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.numPieces) {
      throw new PeerError('PIECE_OUT_OF_RANGE', `piece ${index} is outside 0..${this.numPieces - 1} for ${this.digest}`);
    }
  }

  private wake(index: number): void {
    const set = this.waiters.get(index);
    if (!set) return;
    this.waiters.delete(index);
    for (const w of set) w.resolve();
  }

  /**
   * The persisted bitfield is a conservative hint: it is rewritten (temp + rename) after the
   * piece's bytes were synced, never before, so after a crash it may miss recent pieces (they are
   * fetched again) but never claims unsynced ones. Writes coalesce; no per-piece fsync of it.
   */
  private schedulePersist(): void {
    if (!this.files) return;
    this.persistDirty = true;
    if (this.persisting) return;
    this.persisting = this.persistLoop().finally(() => (this.persisting = null));
  }

  private async persistLoop(): Promise<void> {
    const files = this.files!;
    while (this.persistDirty) {
      this.persistDirty = false;
      if (this.taskState === 'complete' || this.taskState === 'closed') return;
      const body = JSON.stringify({ v: 1, total: this.numPieces, bitfield: this.bits.toBase64() });
      const tmp = `${files.bitfield}.tmp`;
      try {
        await writeFile(tmp, body);
        await rename(tmp, files.bitfield);
      } catch {
        // Losing the hint only costs re-fetching pieces after a restart.
      }
    }
  }
}

/** Parses a persisted bitfield file; anything unexpected yields an empty bitfield (re-fetch is safe). */
export function parsePersistedBitfield(text: string | null, numPieces: number): Bitfield {
  if (text === null) return new Bitfield(numPieces);
  try {
    const parsed = JSON.parse(text) as { v?: unknown; total?: unknown; bitfield?: unknown };
    if (parsed.v === 1 && parsed.total === numPieces && typeof parsed.bitfield === 'string') return Bitfield.fromBase64(parsed.bitfield, numPieces);
  } catch {
    /* torn or foreign file */
  }
  return new Bitfield(numPieces);
}
