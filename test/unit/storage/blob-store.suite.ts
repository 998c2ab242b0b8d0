// The shared BlobStore contract. Every driver runs this suite (as CNCF Distribution does with
// its storage-driver testsuites): call describeBlobStore() from the driver's own test file.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { RegistryError } from '../../../src/oci/errors.js';
import type { BlobStore } from '../../../src/storage/blob-store.js';

export interface BlobStoreHarness {
  store: BlobStore;
  /** A second instance over the same backing storage, as after a process restart. */
  reopen(): Promise<BlobStore>;
  cleanup(): Promise<void>;
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function failingStream(first: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else {
        this.destroy(new Error('client went away'));
      }
    },
  });
}

const code = (c: string) => (err: unknown) => err instanceof RegistryError && err.code === c;

export function describeBlobStore(name: string, make: () => Promise<BlobStoreHarness>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let h: BlobStoreHarness;
    let store: BlobStore;
    beforeEach(async () => {
      h = await make();
      store = h.store;
    });
    afterEach(async () => h.cleanup());

    it('put then stat/read/readAll round-trips, sha256 and sha512', async () => {
      for (const alg of ['sha256', 'sha512'] as const) {
        const data = randomBytes(3000);
        const d = digestOf(data, alg);
        await store.put(d, data);
        assert.equal((await store.stat(d))?.size, 3000);
        assert.deepEqual(await store.readAll(d), data);
        assert.deepEqual(await collect(await store.read(d)), data);
      }
    });

    it('put refuses content that does not match its digest and leaves nothing', async () => {
      const d = digestOf('other');
      await assert.rejects(store.put(d, Buffer.from('not other')), code('DIGEST_INVALID'));
      assert.equal(await store.stat(d), null);
    });

    it('reads byte ranges', async () => {
      const data = randomBytes(10_000);
      const d = digestOf(data);
      await store.put(d, data);
      assert.deepEqual(await collect(await store.read(d, { start: 500, end: 1499 })), data.subarray(500, 1500));
      assert.deepEqual(await collect(await store.read(d, { start: 9999, end: 9999 })), data.subarray(9999));
    });

    it('copyTo (when the driver has it) writes the blob or a range, byte for byte', async (t) => {
      if (!store.copyTo) return t.skip('driver has no copyTo fast path');
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const d = digestOf(data);
      await store.put(d, data);
      const { Writable } = await import('node:stream');
      for (const range of [undefined, { start: 5, end: 2 * 1024 * 1024 + 3 }]) {
        // Like a socket: done with each chunk when its write callback fires.
        const parts: Buffer[] = [];
        const out = new Writable({ write: (c: Buffer, _e, cb) => (parts.push(Buffer.from(c)), setImmediate(cb)) });
        const n = await store.copyTo(d, out, range);
        const expected = range ? data.subarray(range.start, range.end + 1) : data;
        assert.equal(n, expected.length);
        assert.deepEqual(Buffer.concat(parts), expected);
      }
    });

    it('copyTo into a client that hangs up mid-blob rejects, and leaves no unhandled rejection behind', async (t) => {
      if (!store.copyTo) return t.skip('driver has no copyTo fast path');
      const data = randomBytes(4 * 1024 * 1024);
      const d = digestOf(data);
      await store.put(d, data);
      const { Writable } = await import('node:stream');
      const unhandled: unknown[] = [];
      const onUnhandled = (err: unknown) => unhandled.push(err);
      process.on('unhandledRejection', onUnhandled);
      try {
        let writes = 0;
        // Fails the second write at once, while copyTo is still reading the next chunk.
        const out = new Writable({ write: (_c: Buffer, _e, cb) => (++writes === 2 ? cb(new Error('ECONNRESET')) : setTimeout(cb, 20)) });
        out.on('error', () => undefined);
        await assert.rejects(store.copyTo(d, out));
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    it('missing blobs: stat null, read and readAll BLOB_UNKNOWN, delete false', async () => {
      const d = digestOf('absent');
      assert.equal(await store.stat(d), null);
      await assert.rejects(store.read(d), code('BLOB_UNKNOWN'));
      await assert.rejects(store.readAll(d), code('BLOB_UNKNOWN'));
      assert.equal(await store.delete(d), false);
    });

    it('delete removes and list enumerates', async () => {
      const a = Buffer.from('a');
      const b = Buffer.from('b');
      await store.put(digestOf(a), a);
      await store.put(digestOf(b, 'sha512'), b);
      const listed = new Set<Digest>();
      for await (const info of store.list()) listed.add(info.digest);
      assert.ok(listed.has(digestOf(a)) && listed.has(digestOf(b, 'sha512')));
      assert.equal(await store.delete(digestOf(a)), true);
      assert.equal(await store.stat(digestOf(a)), null);
    });

    it('chunked upload: append, size, commit verifies the digest', async () => {
      const data = randomBytes(200_000);
      await store.createUpload('upload-one-0001');
      assert.equal(await store.uploadSize('upload-one-0001'), 0);
      assert.equal(await store.appendUpload('upload-one-0001', Readable.from([data.subarray(0, 70_000)]), { expectedOffset: 0 }), 70_000);
      assert.equal(await store.appendUpload('upload-one-0001', Readable.from([data.subarray(70_000)]), { expectedOffset: 70_000 }), 200_000);
      const info = await store.commitUpload('upload-one-0001', digestOf(data));
      assert.equal(info.size, 200_000);
      assert.deepEqual(await store.readAll(digestOf(data)), data);
      assert.equal(await store.uploadSize('upload-one-0001'), null, 'a committed upload is gone');
    });

    it('out-of-order chunk: RANGE_INVALID and nothing written', async () => {
      await store.createUpload('upload-ooo-0001');
      await store.appendUpload('upload-ooo-0001', Readable.from([Buffer.alloc(10)]));
      await assert.rejects(store.appendUpload('upload-ooo-0001', Readable.from([Buffer.alloc(10)]), { expectedOffset: 20 }), code('RANGE_INVALID'));
      assert.equal(await store.uploadSize('upload-ooo-0001'), 10);
    });

    it('a wrong digest at commit is refused; the blob is not visible and the upload can still be committed correctly', async () => {
      const data = randomBytes(1000);
      await store.createUpload('upload-bad-0001');
      await store.appendUpload('upload-bad-0001', Readable.from([data]));
      const wrong = digestOf('something else');
      await assert.rejects(store.commitUpload('upload-bad-0001', wrong), code('DIGEST_INVALID'));
      assert.equal(await store.stat(wrong), null);
      assert.equal(await store.stat(digestOf(data)), null);
      await store.commitUpload('upload-bad-0001', digestOf(data));
      assert.deepEqual(await store.readAll(digestOf(data)), data);
    });

    it('a stream that dies mid-chunk rolls the upload back to its last good offset', async () => {
      const good = randomBytes(5000);
      await store.createUpload('upload-cut-0001');
      await store.appendUpload('upload-cut-0001', Readable.from([good]));
      await assert.rejects(store.appendUpload('upload-cut-0001', failingStream(randomBytes(3000))), code('BLOB_UPLOAD_INVALID'));
      assert.equal(await store.uploadSize('upload-cut-0001'), 5000);
      const rest = randomBytes(100);
      await store.appendUpload('upload-cut-0001', Readable.from([rest]), { expectedOffset: 5000 });
      const all = Buffer.concat([good, rest]);
      await store.commitUpload('upload-cut-0001', digestOf(all));
      assert.deepEqual(await store.readAll(digestOf(all)), all);
    });

    it('a chunk shorter than its declared length is rolled back (truncated upload)', async () => {
      await store.createUpload('upload-short-01');
      await assert.rejects(store.appendUpload('upload-short-01', Readable.from([Buffer.alloc(10)]), { expectedLength: 20 }), code('SIZE_INVALID'));
      assert.equal(await store.uploadSize('upload-short-01'), 0);
    });

    it('maxTotalSize caps an upload', async () => {
      await store.createUpload('upload-big-0001');
      await assert.rejects(store.appendUpload('upload-big-0001', Readable.from([Buffer.alloc(2000)]), { maxTotalSize: 1000 }), code('SIZE_INVALID'));
      assert.equal(await store.uploadSize('upload-big-0001'), 0);
    });

    it('an upload survives a restart and commits with the right digest (sha256 and sha512)', async () => {
      for (const alg of ['sha256', 'sha512'] as const) {
        const id = `upload-restart-${alg}`;
        const data = randomBytes(50_000);
        await store.createUpload(id);
        await store.appendUpload(id, Readable.from([data.subarray(0, 20_000)]));
        const again = await h.reopen();
        assert.equal(await again.uploadSize(id), 20_000);
        await again.appendUpload(id, Readable.from([data.subarray(20_000)]), { expectedOffset: 20_000 });
        await again.commitUpload(id, digestOf(data, alg));
        assert.deepEqual(await again.readAll(digestOf(data, alg)), data);
      }
    });

    it('abort removes the upload; unknown uploads are BLOB_UPLOAD_UNKNOWN', async () => {
      await store.createUpload('upload-abort-01');
      const ids: string[] = [];
      for await (const u of store.listUploads()) ids.push(u.id);
      assert.ok(ids.includes('upload-abort-01'));
      await store.abortUpload('upload-abort-01');
      assert.equal(await store.uploadSize('upload-abort-01'), null);
      await assert.rejects(store.appendUpload('upload-abort-01', Readable.from([Buffer.alloc(1)])), code('BLOB_UPLOAD_UNKNOWN'));
      await assert.rejects(store.commitUpload('upload-abort-01', digestOf('')), code('BLOB_UPLOAD_UNKNOWN'));
    });

    it('rejects upload ids that could escape the upload area', async () => {
      await assert.rejects(store.createUpload('../../etc/passwd'), code('BLOB_UPLOAD_UNKNOWN'));
      await assert.rejects(store.appendUpload('../x/y/z/w', Readable.from([Buffer.alloc(1)])), code('BLOB_UPLOAD_UNKNOWN'));
    });
  });
}
