// One blob on its way to (or already in) the piece store. While partial, its bytes live in a
// sparse file of the blob's size under tasks/<alg>-<hex>/data and a bitfield beside it names the
// pieces that were verified and synced. Pieces are checked against the manifest BEFORE they are
// written, so a held bit always means "these bytes hash to the piece digest".
import { EventEmitter } from 'node:events';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createHash, type Hash } from 'node:crypto';
import type { Digest } from '../../oci/digest.js';
import { parseDigest } from '../../oci/digest.js';
import type { PieceManifest } from '../protocol.js';
import { Bitfield } from './bitfield.js';
import { PeerError } from './errors.js';
import { READ_CHUNK, pieceBounds } from './manifest.js';
import { abortReason } from './clock.js';

/** Streamed pieces reach the disk in blocks of this size (one per piece in flight is all the memory they take). */
const STAGE_BYTES = 512 * 1024;
const MAX_STAGE_BUFFERS = 8;
/**
 * Endgame copies of a piece that is already streaming to disk are held in memory (a piece each)
 * until the first copy's outcome is known; at most this many per task. Later copies are read and
 * dropped: at 20 Mbit/s the endgame's duplicates alone held 15-30 MB of an agent's memory.
 */
const MAX_DUPLICATE_BUFFERS = 2;

export type PieceTaskState = 'partial' | 'finalizing' | 'complete' | 'closed';

export interface PieceTaskEvents {
  /** A verified piece became readable. */
  piece: [index: number];
  /** The blob is complete at its final path. */
  complete: [path: string];
  /** A reader started waiting for a piece not held yet (hook it to TaskDownloader.setSequentialFrom). */
  waiting: [index: number];
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
  private duplicateBuffers = 0;
  private readonly waiters = new Map<number, Set<Waiter>>();
  private persisting: Promise<void> | null = null;
  private persistDirty = false;
  private finalizing: Promise<string> | null = null;
  /** Bumped when the bytes move to a different inode (a whole blob written beside us), so open readers re-open. */
  private generation = 0;
  // The whole-blob hash of the contiguous prefix of held pieces, advanced from disk in the
  // background as pieces land, so finalize() only hashes what is left: little when pieces come
  // roughly in order (a client streaming the blob, a resumed download), more after a purely
  // rarest-first download.
  private prefixHash: Hash;
  private prefixNext = 0;
  private prefixRun: Promise<void> | null = null;
  private prefixBroken = false;
  private prefixBuf: Buffer | null = null;
  /** Bumped when the prefix hash restarts, so an in-order piece hashed against an old prefix is not applied. */
  private prefixEpoch = 0;
  /** Reused staging blocks of streamed pieces (fewer big allocations for the GC to chase). */
  private readonly stageBuffers: Buffer[] = [];

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
    this.prefixHash = createHash(parseDigest(this.digest).algorithm);
    // Many readers may wait on one task (streaming clients, long-polls); that is not a leak.
    this.setMaxListeners(0);
    this.advancePrefix();
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
    // The piece that extends the whole-blob prefix is hashed into it from memory now, not read back from disk later.
    const inOrder = this.inOrderHash(index);
    inOrder?.hash.update(data);
    const write = this.writeVerified(index, offset, data, inOrder);
    this.writing.set(index, write);
    try {
      return await write;
    } finally {
      this.writing.delete(index);
    }
  }

  /**
   * The streaming form of writePiece: bytes go to the piece's place in the data file as they
   * arrive (staged in small blocks, hashed on the way), so a piece is never held in memory whole.
   * The piece is marked held only if the full length arrived and the digest matches; until then
   * its byte range is not readable, so a bad or cut-off stream leaves nothing visible. When
   * another copy of the piece is being written (endgame), this copy is buffered and handed to
   * writePiece instead, so two writers never share a byte range.
   */
  async writePieceStream(index: number, source: AsyncIterable<Uint8Array>): Promise<boolean> {
    this.checkIndex(index);
    if (this.bits.has(index) || this.taskState === 'complete' || this.taskState === 'finalizing') return false;
    if (this.taskState === 'closed') throw new PeerError('TASK_CLOSED', `task ${this.digest} is closed`);
    const { length } = pieceBounds(this.manifest, index);
    if (this.writing.has(index)) return this.writeDuplicate(index, source, length);
    const write = this.streamVerified(index, source);
    this.writing.set(index, write);
    try {
      return await write;
    } finally {
      if (this.writing.get(index) === write) this.writing.delete(index);
    }
  }

  /** An endgame copy of a piece another copy is writing: kept until that one's outcome is known, or dropped. */
  private async writeDuplicate(index: number, source: AsyncIterable<Uint8Array>, length: number): Promise<boolean> {
    if (this.duplicateBuffers >= MAX_DUPLICATE_BUFFERS) {
      // Read to the end, so the connection is free for the next request; if the first copy fails, the piece is asked for again.
      for await (const chunk of source) void chunk;
      return false;
    }
    this.duplicateBuffers++;
    try {
      return await this.writePiece(index, await collectPiece(source, length, index, this.digest));
    } finally {
      this.duplicateBuffers--;
    }
  }

  private async streamVerified(index: number, source: AsyncIterable<Uint8Array>): Promise<boolean> {
    const fh = this.fh;
    if (!fh) return false;
    const { offset, length } = pieceBounds(this.manifest, index);
    const expected = this.manifest.pieceDigests[index]!;
    const algorithm = parseDigest(expected).algorithm;
    const hash = createHash(algorithm);
    const inOrder = this.inOrderHash(index);
    const stage = this.stageBuffers.pop() ?? Buffer.allocUnsafeSlow(STAGE_BYTES);
    let staged = 0;
    let written = 0;
    let received = 0;
    const room = Math.max(1, Math.min(STAGE_BYTES, length));
    const flush = async () => {
      for (let done = 0; done < staged; ) {
        const { bytesWritten } = await fh.write(stage, done, staged - done, offset + written + done);
        done += bytesWritten;
      }
      written += staged;
      staged = 0;
    };
    try {
      for await (const chunk of source) {
        if (received + chunk.length > length) {
          throw new PeerError('PIECE_SIZE_MISMATCH', `piece ${index} of ${this.digest} is longer than ${length} bytes`, { detail: { index, expected: length } });
        }
        hash.update(chunk);
        inOrder?.hash.update(chunk);
        received += chunk.length;
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(room - staged, chunk.length - off);
          stage.set(chunk.subarray(off, off + n), staged);
          staged += n;
          off += n;
          if (staged === room) await flush();
        }
      }
      await flush();
    } catch (err) {
      // The file was closed under us because the blob completed another way: not our problem.
      if (this.taskState !== 'partial' && !(err instanceof PeerError)) return false;
      throw err;
    } finally {
      if (this.stageBuffers.length < MAX_STAGE_BUFFERS) this.stageBuffers.push(stage);
    }
    if (received !== length) {
      throw new PeerError('PIECE_SIZE_MISMATCH', `piece ${index} of ${this.digest} is ${length} bytes, got ${received}`, { detail: { index, expected: length, actual: received } });
    }
    const actual = `${algorithm}:${hash.digest('hex')}`;
    if (actual !== expected) {
      throw new PeerError('PIECE_DIGEST_MISMATCH', `piece ${index} of ${this.digest} hashes to ${actual}, not ${expected}`, { detail: { index, expected, actual } });
    }
    try {
      if (this.host.durable && length > 0) await fh.datasync();
    } catch (err) {
      if (this.taskState !== 'partial') return false;
      throw err;
    }
    return this.markHeld(index, inOrder);
  }

  /**
   * A copy of the whole-blob prefix hash to feed piece `index` into while it is written, when it
   * is the next piece of the prefix and the background hasher is idle; else null (the piece is
   * hashed from disk later, as before). Pieces of a streamed blob mostly land in order, so most
   * of the whole-blob hash is then computed on bytes already in memory.
   */
  private inOrderHash(index: number): InOrderHash | null {
    if (index !== this.prefixNext) return null;
    if (this.prefixRun || this.prefixBroken) return null;
    return { index: this.prefixNext, epoch: this.prefixEpoch, hash: this.prefixHash.copy() };
  }

  private async writeVerified(index: number, offset: number, data: Uint8Array, inOrder: InOrderHash | null = null): Promise<boolean> {
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
    return this.markHeld(index, inOrder);
  }

  private markHeld(index: number, inOrder: InOrderHash | null = null): boolean {
    if (this.taskState !== 'partial') return false;
    if (!this.bits.set(index)) return false;
    if (inOrder && inOrder.index === index && index === this.prefixNext && inOrder.epoch === this.prefixEpoch && !this.prefixRun && !this.prefixBroken) {
      this.prefixHash = inOrder.hash;
      this.prefixNext++;
    }
    this.schedulePersist();
    this.wake(index);
    this.emit('piece', index);
    if (index === this.prefixNext) this.advancePrefix();
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
    this.emit('waiting', index);
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
      // Finish the whole-blob hash from disk: the background prefix hash stops at piece boundaries.
      await this.prefixRun;
      if (this.prefixBroken) this.resetPrefix();
      try {
        await this.hashPrefix(() => true);
      } catch {
        // A short read means the data file lost bytes: fall through to the per-piece check.
      }
      const algorithm = parseDigest(this.digest).algorithm;
      const actual = this.prefixNext === this.numPieces ? `${algorithm}:${this.prefixHash.digest('hex')}` : 'unreadable';
      this.prefixHash = createHash(algorithm);
      this.prefixBuf = null;
      this.stageBuffers.length = 0;
      if (actual !== this.digest) {
        this.resetPrefix();
        // Which is wrong, the disk or the manifest? Pieces that no longer match are the disk's fault.
        const bad = await this.reverifyPieces();
        if (bad.length > 0) {
          this.taskState = 'partial';
          this.schedulePersist();
          this.advancePrefix();
          throw new PeerError('PIECES_CORRUPT_ON_DISK', `${bad.length} piece(s) of ${this.digest} changed on disk and were cleared for re-fetch`, { detail: { pieces: bad } });
        }
        throw new PeerError('BLOB_DIGEST_MISMATCH', `every piece matches but the blob hashes to ${actual}, not ${this.digest}: the piece manifest is wrong`, {
          detail: { expected: this.digest, actual, size: this.manifest.size },
        });
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

  /** Starts (if idle) hashing held pieces that extend the contiguous prefix, in the background. */
  private advancePrefix(): void {
    if (this.prefixRun || this.prefixBroken || this.taskState !== 'partial' || !this.bits.has(this.prefixNext)) return;
    this.prefixRun = this.hashPrefix(() => this.taskState === 'partial')
      .catch(() => {
        this.prefixBroken = true;
      })
      .finally(() => {
        this.prefixRun = null;
        this.prefixBuf = null;
        // A piece may have landed between the loop's last check and now.
        this.advancePrefix();
      });
  }

  /** Feeds held pieces from prefixNext on into the whole-blob hash, reading them from disk. */
  private async hashPrefix(go: () => boolean): Promise<void> {
    const fh = this.fh;
    if (!fh) throw new PeerError('TASK_CLOSED', `task ${this.digest} has no data file`);
    while (go() && this.prefixNext < this.numPieces && this.bits.has(this.prefixNext)) {
      const { offset, length } = pieceBounds(this.manifest, this.prefixNext);
      const buf = (this.prefixBuf ??= Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, this.manifest.pieceSize))));
      for (let pos = offset; pos < offset + length; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, offset + length - pos), pos);
        if (bytesRead === 0) throw new PeerError('PIECE_NOT_HELD', `data file of ${this.digest} is short at ${pos}`);
        this.prefixHash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      this.prefixNext++;
    }
  }

  private resetPrefix(): void {
    this.prefixEpoch++;
    this.prefixHash = createHash(parseDigest(this.digest).algorithm);
    this.prefixNext = 0;
    this.prefixBroken = false;
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
    await this.prefixRun;
    const fh = this.fh;
    this.fh = null;
    this.stageBuffers.length = 0;
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
      // 'closed' still writes: close() flushes the last bits before it lets go of the task.
      if (this.taskState === 'complete') return;
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

/** Reads a piece's stream into memory (exactly `length` bytes, else PIECE_SIZE_MISMATCH). */
async function collectPiece(source: AsyncIterable<Uint8Array>, length: number, index: number, digest: Digest): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  for await (const chunk of source) {
    if (off + chunk.length > length) throw new PeerError('PIECE_SIZE_MISMATCH', `piece ${index} of ${digest} is longer than ${length} bytes`);
    buf.set(chunk, off);
    off += chunk.length;
  }
  if (off !== length) throw new PeerError('PIECE_SIZE_MISMATCH', `piece ${index} of ${digest} is ${length} bytes, got ${off}`);
  return buf;
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

/** The whole-blob prefix hash extended by one piece being written (applied only if still current). */
interface InOrderHash {
  index: number;
  epoch: number;
  hash: Hash;
}
