// PieceStore / PieceTask: verification before a piece counts, restart, finalize, whole blobs, GC.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import type { PieceManifest } from '../../../src/p2p/protocol.js';
import { PieceStore } from '../../../src/p2p/peer/piece-store.js';
import { buildManifest } from '../../../src/p2p/peer/manifest.js';
import { isPeerError } from '../../../src/p2p/peer/errors.js';

const PS = 64 * 1024;

function manifestOf(blob: Buffer, pieceSize = PS): PieceManifest {
  const pieceDigests: Digest[] = [];
  for (let off = 0; off < Math.max(1, blob.length); off += pieceSize) pieceDigests.push(digestOf(blob.subarray(off, off + pieceSize)));
  return { digest: digestOf(blob), size: blob.length, pieceSize, pieceDigests };
}
const piece = (blob: Buffer, i: number, pieceSize = PS) => blob.subarray(i * pieceSize, (i + 1) * pieceSize);

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('PieceStore', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-pieces-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a wrong piece without holding it, accepts the right one, reads it back', async () => {
    const dir = join(root, 'a');
    const store = await PieceStore.open(dir);
    const blob = randomBytes(PS * 3 + 100);
    const task = await store.openTask(manifestOf(blob));
    const bad = Buffer.from(piece(blob, 1));
    bad[7] = bad[7]! ^ 0xff;
    await assert.rejects(task.writePiece(1, bad), (e) => isPeerError(e, 'PIECE_DIGEST_MISMATCH'));
    assert.equal(task.has(1), false);
    assert.equal(task.bitfield.count, 0);
    await assert.rejects(task.writePiece(1, piece(blob, 1).subarray(1)), (e) => isPeerError(e, 'PIECE_SIZE_MISMATCH'));
    await assert.rejects(task.writePiece(9, piece(blob, 1)), (e) => isPeerError(e, 'PIECE_OUT_OF_RANGE'));
    await assert.rejects(task.readPiece(1), (e) => isPeerError(e, 'PIECE_NOT_HELD'));
    assert.equal(await task.writePiece(1, piece(blob, 1)), true);
    assert.equal(await task.writePiece(1, piece(blob, 1)), false, 'second copy is a no-op');
    assert.deepEqual(await task.readPiece(1), piece(blob, 1));
    assert.deepEqual(await collect(await task.createPieceStream(1)), piece(blob, 1));
    assert.equal(task.pieceLength(3), 100);
    await store.close();
  });

  it('resumes a partial download after a restart with its bitfield', async () => {
    const dir = join(root, 'b');
    const blob = randomBytes(PS * 4);
    const m = manifestOf(blob);
    let store = await PieceStore.open(dir);
    let task = await store.openTask(m);
    await task.writePiece(0, piece(blob, 0));
    await task.writePiece(2, piece(blob, 2));
    await store.close();

    store = await PieceStore.open(dir);
    assert.deepEqual(await store.listPartial(), [m.digest]);
    assert.deepEqual(await store.getManifest(m.digest), m);
    task = await store.openTask(m);
    assert.equal(task.bitfield.count, 2);
    assert.ok(task.has(0) && task.has(2) && !task.has(1));
    assert.deepEqual(await task.readPiece(2), piece(blob, 2));
    await task.writePiece(1, piece(blob, 1));
    await task.writePiece(3, piece(blob, 3));
    const path = await task.finalize();
    assert.equal(path, join(dir, 'blobs', 'sha256', m.digest.slice(7)));
    assert.ok(task.isComplete);
    assert.deepEqual(await store.listPartial(), []);
    await store.close();

    // A different manifest (other piece size) for a partial task starts over.
    store = await PieceStore.open(dir);
    const blob2 = randomBytes(PS * 2);
    const t2 = await store.openTask(manifestOf(blob2));
    await t2.writePiece(0, piece(blob2, 0));
    await store.close();
    store = await PieceStore.open(dir);
    const t3 = await store.openTask(manifestOf(blob2, PS / 2));
    assert.equal(t3.bitfield.count, 0);
    await store.close();
  });

  it('finalize re-verifies the whole blob: a manifest with the wrong blob digest is refused, nothing appears in blobs/', async () => {
    const dir = join(root, 'c');
    const store = await PieceStore.open(dir);
    const blob = randomBytes(PS * 2 + 5);
    const lie = { ...manifestOf(blob), digest: digestOf('something else') };
    const task = await store.openTask(lie);
    await assert.rejects(task.finalize(), (e) => isPeerError(e, 'TASK_INCOMPLETE'));
    for (let i = 0; i < 3; i++) assert.equal(await task.writePiece(i, piece(blob, i)), true);
    await assert.rejects(task.finalize(), (e) => isPeerError(e, 'BLOB_DIGEST_MISMATCH'));
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), []);
    assert.equal(store.hasComplete(lie.digest), false);
    assert.equal(task.isComplete, false);
    await store.close();
  });

  it('finalize finds pieces that changed on disk and clears them for re-fetch', async () => {
    const dir = join(root, 'd');
    const store = await PieceStore.open(dir);
    const blob = randomBytes(PS * 3);
    const m = manifestOf(blob);
    const task = await store.openTask(m);
    // Pieces 1 and 2 first: the background whole-blob hash cannot start before piece 0 is held.
    for (const i of [1, 2]) await task.writePiece(i, piece(blob, i));
    // Simulate a disk fault under the store.
    const { open } = await import('node:fs/promises');
    const fh = await open(join(dir, 'tasks', `sha256-${m.digest.slice(7)}`, 'data'), 'r+');
    await fh.write(Buffer.from('garbage'), 0, 7, PS + 10);
    await fh.close();
    await task.writePiece(0, piece(blob, 0));
    await assert.rejects(task.finalize(), (e) => isPeerError(e, 'PIECES_CORRUPT_ON_DISK') && JSON.stringify(e.detail) === '{"pieces":[1]}');
    assert.equal(task.has(1), false);
    await task.writePiece(1, piece(blob, 1));
    await task.finalize();
    const complete = await store.openComplete(m.digest);
    assert.deepEqual(await collect(complete!.stream), blob);
    await store.close();
  });

  it('pieces that land in order are hashed into the whole-blob digest from memory (both write paths); finalize accepts the blob', async () => {
    const dir = join(root, 'inorder');
    const store = await PieceStore.open(dir, { durable: false });
    const blob = randomBytes(PS * 4 + 9);
    const m = manifestOf(blob);
    const task = await store.openTask(m);
    // In order, by both write paths (buffer and stream).
    assert.equal(await task.writePiece(0, piece(blob, 0)), true);
    assert.equal(await task.writePieceStream(1, Readable.from([piece(blob, 1).subarray(0, 1000), piece(blob, 1).subarray(1000)])), true);
    assert.equal(await task.writePiece(2, piece(blob, 2)), true);
    // Garble pieces 0-2 on disk after they were verified: a read-back hash would now fail.
    const { open } = await import('node:fs/promises');
    const fh = await open(join(dir, 'tasks', `sha256-${m.digest.slice(7)}`, 'data'), 'r+');
    await fh.write(Buffer.alloc(PS * 3, 0), 0, PS * 3, 0);
    await fh.close();
    for (const i of [3, 4]) assert.equal(await task.writePiece(i, piece(blob, i)), true);
    // The hash was computed from the verified bytes as they were written (the disk fault is the
    // clients' digest check's and the peers' piece checks' to find, as for any later fault).
    await task.finalize();
    assert.equal(store.hasComplete(m.digest), true);
    await store.close();
  });

  it('endgame copies of a piece being written: two are kept (one rescues a bad first copy), later ones are read and dropped', async () => {
    const dir = join(root, 'dups');
    const store = await PieceStore.open(dir, { durable: false });
    const blob = randomBytes(PS * 2);
    const m = manifestOf(blob);
    const task = await store.openTask(m);
    // The first copy streams bytes that fail verification, and only when released.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const bad = Buffer.from(piece(blob, 0));
    bad[7] = bad[7]! ^ 0xff;
    const first = task.writePieceStream(0, (async function* () {
      yield bad.subarray(0, 100);
      await gate;
      yield bad.subarray(100);
    })());
    // Let the first copy start streaming.
    await new Promise((r) => setImmediate(r));
    let thirdRead = 0;
    const second = task.writePieceStream(0, Readable.from([piece(blob, 0)]));
    const secondAlt = task.writePieceStream(0, Readable.from([piece(blob, 0)]));
    const third = task.writePieceStream(0, (async function* () {
      thirdRead++;
      yield piece(blob, 0);
    })());
    assert.equal(await third, false, 'over the cap: read to the end and dropped, nothing stored');
    assert.equal(thirdRead, 1);
    release();
    await assert.rejects(first, (e) => isPeerError(e, 'PIECE_DIGEST_MISMATCH'));
    const kept = [await second, await secondAlt];
    assert.deepEqual(kept.sort(), [false, true], 'one kept copy lands after the bad first copy; the other finds it held');
    assert.equal(task.has(0), true);
    assert.deepEqual(await task.readPiece(0), piece(blob, 0));
    await store.close();
  });

  it('streams the blob in order while pieces arrive out of order; waiters wake', async () => {
    const dir = join(root, 'e');
    const store = await PieceStore.open(dir, { durable: false });
    const blob = randomBytes(PS * 5 + 1);
    const task = await store.openTask(manifestOf(blob));
    const reading = collect(task.createReadStream());
    const ranged = collect(task.createReadStream({ start: PS - 10, end: 2 * PS + 9 }));
    const waited = task.waitForPiece(5);
    for (const i of [5, 3, 1, 0, 4, 2]) {
      await new Promise((r) => setTimeout(r, 2));
      await task.writePiece(i, piece(blob, i));
    }
    await waited;
    assert.deepEqual(await reading, blob);
    assert.deepEqual(await ranged, blob.subarray(PS - 10, 2 * PS + 10));
    await task.finalize();
    assert.deepEqual(await collect(task.createReadStream({ start: 3 })), blob.subarray(3));
    const ctl = new AbortController();
    const t2 = await store.openTask(manifestOf(randomBytes(10)));
    const w = t2.waitForPiece(0, ctl.signal);
    ctl.abort();
    await assert.rejects(w);
    await store.close();
  });

  it('writes whole blobs (back-to-source / seed) with a manifest, verifies them, and serves ranges', async () => {
    const dir = join(root, 'f');
    const store = await PieceStore.open(dir);
    const blob = randomBytes(PS * 2 + 33);
    const digest = digestOf(blob);
    const m = await store.writeCompleteBlob(digest, Readable.from([blob.subarray(0, 1000), blob.subarray(1000)]), { pieceSize: PS, expectedSize: blob.length });
    assert.deepEqual(m, manifestOf(blob));
    const r = await store.openComplete(digest, { start: 10, end: 19 });
    assert.deepEqual(await collect(r!.stream), blob.subarray(10, 20));
    // Wrong content never becomes visible.
    await assert.rejects(store.writeCompleteBlob(digestOf('x'), Readable.from([blob]), { pieceSize: PS }), (e) => isPeerError(e, 'BLOB_DIGEST_MISMATCH'));
    await assert.rejects(store.writeCompleteBlob(digest, Readable.from([blob]), { pieceSize: PS, expectedSize: 5 }), (e) => isPeerError(e, 'SIZE_MISMATCH'));
    assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), [digest.slice(7)]);
    // A complete blob is servable by piece after a restart.
    await store.close();
    const again = await PieceStore.open(dir);
    const task = await again.lookup(digest);
    assert.ok(task?.isComplete);
    assert.deepEqual(await task!.readPiece(2), piece(blob, 2));
    // buildManifest / adoptCompleteFile from a file elsewhere.
    const outside = join(root, 'outside.bin');
    const other = randomBytes(1000);
    await writeFile(outside, other);
    assert.deepEqual(await buildManifest(digestOf(other), outside, 256), manifestOf(other, 256));
    await again.adoptCompleteFile(digestOf(other), outside, { pieceSize: 256, move: true });
    assert.equal(again.completeSize(digestOf(other)), 1000);
    await assert.rejects(stat(outside));
    await again.close();
  });

  it('an open partial task switches to a whole blob written beside it (readers keep going)', async () => {
    const dir = join(root, 'g');
    const store = await PieceStore.open(dir, { durable: false });
    const blob = randomBytes(PS * 3);
    const m = manifestOf(blob);
    const task = await store.openTask(m);
    await task.writePiece(0, piece(blob, 0));
    const reading = collect(task.createReadStream());
    await new Promise((r) => setTimeout(r, 5));
    await store.writeCompleteBlob(m.digest, Readable.from([blob]), { pieceSize: PS });
    assert.deepEqual(await reading, blob);
    assert.ok(task.isComplete);
    assert.deepEqual(await store.listPartial(), []);
    await store.close();
  });

  it('handles a zero-byte blob', async () => {
    const store = await PieceStore.open(join(root, 'z'));
    const m = manifestOf(Buffer.alloc(0));
    assert.equal(m.pieceDigests.length, 1);
    const task = await store.openTask(m);
    assert.equal(await task.writePiece(0, Buffer.alloc(0)), true);
    await task.finalize();
    assert.equal(store.completeSize(m.digest), 0);
    assert.deepEqual(await collect(task.createReadStream()), Buffer.alloc(0));
    await store.close();
  });

  it('evicts least recently used complete blobs over the quota', async () => {
    const dir = join(root, 'h');
    const store = await PieceStore.open(dir, { minEvictAgeMs: 0, durable: false });
    const blobs = [randomBytes(1000), randomBytes(1000), randomBytes(1000)];
    for (const b of blobs) {
      await store.writeCompleteBlob(digestOf(b), Readable.from([b]), { pieceSize: 256 });
      await new Promise((r) => setTimeout(r, 3));
    }
    store.touch(digestOf(blobs[0]!));
    const res = await store.gc({ quotaBytes: 2000 });
    assert.deepEqual(res.evicted, [digestOf(blobs[1]!)]);
    assert.equal(store.hasComplete(digestOf(blobs[0]!)), true);
    assert.equal(store.hasComplete(digestOf(blobs[1]!)), false);
    assert.equal(await store.getManifest(digestOf(blobs[1]!)), null);
    assert.equal(store.usedBytes(), 2000);
    await store.close();
  });
});
