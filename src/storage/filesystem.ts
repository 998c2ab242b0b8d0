// Content-addressed filesystem driver.
// Layout: blobs/<alg>/<2 hex>/<hex>, uploads/<id>/data, tmp/. Every write lands in a temp
// file, is fsynced and renamed into place, so a blob is either absent or complete.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID, type Hash } from 'node:crypto';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../oci/errors.js';
import { digestOf, newHash, parseDigest, type Digest, type DigestAlgorithm } from '../oci/digest.js';
import type { AppendOptions, BlobInfo, BlobStore, ByteRange, UploadInfo } from './blob-store.js';
import { fsyncDir } from './durable-file.js';

const READ_CHUNK = 1024 * 1024;
const uploadIdPattern = /^[A-Za-z0-9_-]{8,128}$/;

interface RunningHash {
  algorithm: DigestAlgorithm;
  hash: Hash;
  /** Bytes hashed so far; must equal the file size to be trusted. */
  offset: number;
}

export class FilesystemBlobStore implements BlobStore {
  /** Incremental hashes of in-flight uploads, so commit need not re-read the data. Lost on restart: then commit re-hashes from disk. */
  private readonly hashes = new Map<string, RunningHash>();

  constructor(private readonly root: string) {}

  async init(): Promise<this> {
    await Promise.all(['blobs/sha256', 'blobs/sha512', 'uploads', 'tmp'].map((d) => mkdir(join(this.root, d), { recursive: true })));
    return this;
  }

  private blobPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex.slice(0, 2), hex);
  }

  private uploadDir(id: string): string {
    if (!uploadIdPattern.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload id is malformed');
    return join(this.root, 'uploads', id);
  }

  async stat(digest: Digest): Promise<BlobInfo | null> {
    try {
      const s = await stat(this.blobPath(digest));
      return { digest, size: s.size, modifiedAt: s.mtime };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Opens a stored blob for reading; BLOB_UNKNOWN when it is absent. */
  private async openBlob(digest: Digest) {
    try {
      return await open(this.blobPath(digest), 'r');
    } catch (err) {
      if (isNotFound(err)) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored`);
      throw err;
    }
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    const fh = await this.openBlob(digest);
    // Small blobs must not pay for a 1 MiB read buffer each.
    const length = range ? range.end - range.start + 1 : (await fh.stat()).size;
    return fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: Math.max(16, Math.min(READ_CHUNK, length)), autoClose: true });
  }

  async copyTo(digest: Digest, out: Writable, range?: ByteRange): Promise<number> {
    const fh = await this.openBlob(digest);
    try {
      const end = range ? range.end + 1 : (await fh.stat()).size;
      let pos = range?.start ?? 0;
      const chunk = Math.max(1, Math.min(READ_CHUNK, end - pos));
      // Two buffers for the whole copy: fresh 1 MiB buffers per chunk push V8 into frequent
      // full GCs (external memory pressure) and halve throughput on large blobs.
      const buffers = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
      let pending: Promise<void> | undefined;
      for (let i = 0; pos < end; i ^= 1) {
        const buf = buffers[i]!;
        const { bytesRead } = await fh.read(buf, 0, Math.min(chunk, end - pos), pos);
        if (bytesRead === 0) throw new RegistryError('INTERNAL', `blob ${digest} is shorter on disk than expected`);
        pos += bytesRead;
        const written = writeChunk(out, buf.subarray(0, bytesRead));
        // Awaited one step later; without a handler now, a client that hangs up while the next
        // read is in flight turns this rejection into an unhandled one and kills the process.
        written.catch(() => undefined);
        // The buffer written two steps ago is free again once its write completed.
        if (pending) await pending;
        pending = written;
      }
      if (pending) await pending;
      return pos - (range?.start ?? 0);
    } finally {
      await fh.close();
    }
  }

  async readAll(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (err) {
      if (isNotFound(err)) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored`);
      throw err;
    }
  }

  async put(digest: Digest, data: Uint8Array): Promise<void> {
    const { algorithm } = parseDigest(digest);
    if (digestOf(data, algorithm) !== digest) throw new RegistryError('DIGEST_INVALID', `content does not match digest ${digest}`);
    const tmp = join(this.root, 'tmp', randomUUID());
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.promote(tmp, digest);
  }

  /** Atomically moves a complete, synced file into the content-addressed tree. */
  private async promote(file: string, digest: Digest): Promise<void> {
    const target = this.blobPath(digest);
    const dir = join(target, '..');
    await mkdir(dir, { recursive: true });
    await rename(file, target);
    await fsyncDir(dir);
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const base = join(this.root, 'blobs', algorithm);
      for (const prefix of await readdirOrEmpty(base)) {
        for (const hex of await readdirOrEmpty(join(base, prefix))) {
          const digest = `${algorithm}:${hex}` as Digest;
          const info = await this.stat(digest).catch(() => null);
          if (info) yield info;
        }
      }
    }
  }

  async createUpload(id: string): Promise<void> {
    const dir = this.uploadDir(id);
    await mkdir(dir, { recursive: true });
    await (await open(join(dir, 'data'), 'wx')).close();
    this.hashes.set(id, { algorithm: 'sha256', hash: newHash('sha256'), offset: 0 });
  }

  async uploadSize(id: string): Promise<number | null> {
    try {
      return (await stat(join(this.uploadDir(id), 'data'))).size;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async appendUpload(id: string, source: Readable, opts: AppendOptions = {}): Promise<number> {
    const file = join(this.uploadDir(id), 'data');
    const offset = await this.uploadSize(id);
    if (offset === null) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} does not exist`);
    if (opts.expectedOffset !== undefined && opts.expectedOffset !== offset) {
      source.resume();
      throw new RegistryError('RANGE_INVALID', `chunk starts at ${opts.expectedOffset} but the upload is at ${offset}; resume from ${offset}`, {
        headers: { Range: offset > 0 ? `0-${offset - 1}` : '0-0' },
      });
    }
    const running = this.hashes.get(id);
    const trusted = running && running.offset === offset ? running : undefined;
    const before = trusted?.hash.copy();
    let received = 0;
    const limit = opts.maxTotalSize;
    const onBytes = opts.onBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        received += chunk.length;
        if (limit !== undefined && offset + received > limit) {
          done(new RegistryError('SIZE_INVALID', `upload exceeds the maximum blob size of ${limit} bytes`, { status: 413 }));
          return;
        }
        trusted?.hash.update(chunk);
        onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(file, { flags: 'r+', start: offset, highWaterMark: READ_CHUNK }));
      if (opts.expectedLength !== undefined && received !== opts.expectedLength) {
        throw new RegistryError('SIZE_INVALID', `expected ${opts.expectedLength} bytes but received ${received}`);
      }
    } catch (err) {
      // Roll back to the last acknowledged offset so a retried chunk starts clean.
      await truncate(file, offset).catch(() => undefined);
      if (trusted && before) this.hashes.set(id, { ...trusted, hash: before });
      if (isRegistryLike(err)) throw err;
      throw new RegistryError('BLOB_UPLOAD_INVALID', `upload interrupted after ${received} bytes: ${(err as Error).message}`, { cause: err });
    }
    if (trusted) trusted.offset = offset + received;
    return offset + received;
  }

  async commitUpload(id: string, expected: Digest): Promise<BlobInfo> {
    const dir = this.uploadDir(id);
    const file = join(dir, 'data');
    const size = await this.uploadSize(id);
    if (size === null) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} does not exist`);
    const { algorithm } = parseDigest(expected);
    const running = this.hashes.get(id);
    const actual =
      running && running.offset === size && running.algorithm === algorithm
        ? `${algorithm}:${running.hash.copy().digest('hex')}`
        : await hashFile(file, algorithm);
    if (actual !== expected) {
      throw new RegistryError('DIGEST_INVALID', `uploaded content hashes to ${actual}, not ${expected}`, { detail: { expected, actual, size } });
    }
    const fh = await open(file, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.promote(file, expected);
    this.hashes.delete(id);
    await rm(dir, { recursive: true, force: true });
    return { digest: expected, size, modifiedAt: new Date() };
  }

  async abortUpload(id: string): Promise<void> {
    this.hashes.delete(id);
    await rm(this.uploadDir(id), { recursive: true, force: true });
  }

  async *listUploads(): AsyncIterable<UploadInfo> {
    for (const id of await readdirOrEmpty(join(this.root, 'uploads'))) {
      if (!uploadIdPattern.test(id)) continue;
      try {
        const s = await stat(join(this.root, 'uploads', id, 'data'));
        yield { id, size: s.size, startedAt: s.birthtime.getTime() > 0 ? s.birthtime : s.ctime };
      } catch {
        /* removed while listing */
      }
    }
  }
}

function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) return reject(new Error('client went away'));
    out.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

async function hashFile(file: string, algorithm: DigestAlgorithm): Promise<Digest> {
  const hash = newHash(algorithm);
  await pipeline(createReadStream(file, { highWaterMark: READ_CHUNK }), async function* (src) {
    for await (const chunk of src) hash.update(chunk as Buffer);
  });
  return `${algorithm}:${hash.digest('hex')}`;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

function isRegistryLike(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
