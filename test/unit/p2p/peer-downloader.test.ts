// TaskDownloader against in-process fakes: a scripted scheduler and LocalTransport serving from
// real PieceStores of a "seed" and other parents.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import type { AnnounceRequest, AnnounceResponse, PeerInfo, PieceManifest } from '../../../src/p2p/protocol.js';
import { PieceStore } from '../../../src/p2p/peer/piece-store.js';
import { LocalTransport } from '../../../src/p2p/peer/local-transport.js';
import { DownloadError, TaskDownloader, pieceTimeoutMs, resolveDownloaderTuning, stallLimitMs, type DownloadTarget, type PeerTransport, type SchedulerClient, type TaskDownloaderOptions } from '../../../src/p2p/peer/downloader.js';
import { PeerError, PeerTransportError } from '../../../src/p2p/peer/errors.js';
import { Bitfield } from '../../../src/p2p/peer/bitfield.js';
import type { Clock } from '../../../src/p2p/peer/clock.js';
import { RateLimiter } from '../../../src/p2p/peer/rate-limiter.js';

const PS = 16 * 1024;
const peer = (id: string, role: 'seed' | 'agent' = 'agent'): PeerInfo => ({ id, url: `http://${id}.invalid`, role, labels: {} });

/** The piece manifest a seed would publish for `blob`. */
function manifestOf(blob: Buffer, pieceSize: number): PieceManifest {
  const pieceDigests: Digest[] = [];
  for (let o = 0; o < blob.length; o += pieceSize) pieceDigests.push(digestOf(blob.subarray(o, o + pieceSize)));
  return { digest: digestOf(blob), size: blob.length, pieceSize, pieceDigests };
}

class FakeScheduler implements SchedulerClient {
  readonly seen: AnnounceRequest[] = [];
  constructor(private readonly answer: (req: AnnounceRequest, n: number) => AnnounceResponse | Promise<AnnounceResponse>) {}
  async announce(req: AnnounceRequest): Promise<AnnounceResponse> {
    this.seen.push(JSON.parse(JSON.stringify(req)) as AnnounceRequest);
    return this.answer(req, this.seen.length);
  }
  badPeers() {
    return this.seen.flatMap((r) => r.badPeers ?? []);
  }
}

// Every scenario twice: pieces buffered whole (piece()) and streamed to disk (pieceStream()).
for (const streaming of [false, true]) {
  describe(`TaskDownloader (${streaming ? 'streaming pieces to disk' : 'buffered pieces'})`, () => {
    let root: string;
    let blob: Buffer;
    let digest: Digest;
    let manifest: PieceManifest;
    const stores: PieceStore[] = [];
    let n = 0;

    /** A store already holding the whole blob (a seed or a finished agent). */
    async function fullStore(): Promise<PieceStore> {
      const s = await PieceStore.open(join(root, `s${n++}`), { durable: false });
      await s.writeCompleteBlob(digest, Readable.from([blob]), { pieceSize: PS });
      stores.push(s);
      return s;
    }
    async function emptyStore(): Promise<PieceStore> {
      const s = await PieceStore.open(join(root, `s${n++}`), { durable: false });
      stores.push(s);
      return s;
    }
    function options(over: Partial<TaskDownloaderOptions> & Pick<TaskDownloaderOptions, 'scheduler' | 'transport' | 'store'>): TaskDownloaderOptions {
      return { self: peer('me'), digest, bitfieldWaitMs: 200, ...over };
    }
    const answer = (parents: PeerInfo[], extra: Partial<AnnounceResponse> = {}): AnnounceResponse => ({ parents, pieces: manifest, announceIntervalMs: 50, backToSource: false, ...extra });

    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'shoal-dl-'));
      blob = randomBytes(PS * 40 + 123);
      digest = digestOf(blob);
      const seed = await fullStore();
      manifest = (await seed.getManifest(digest))!;
    });
    after(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await rm(root, { recursive: true, force: true });
    });

    it('downloads from several parents and the result matches the digest', async () => {
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore());
      t.register('p1', await fullStore());
      t.register('p2', await fullStore());
      const sched = new FakeScheduler(() => answer([peer('seed', 'seed'), peer('p1'), peer('p2')]));
      const pieces: number[] = [];
      const dl = new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore() }));
      dl.on('piece', (e) => pieces.push(e.index));
      const res = await dl.run();
      assert.equal(res.outcome, 'done');
      if (res.outcome !== 'done') return;
      assert.equal(digestOf(await readFile(res.path)), digest);
      assert.equal(pieces.length, 41);
      assert.equal(res.stats.bytesFromPeers + res.stats.bytesFromSeed, blob.length);
      assert.ok(res.stats.parentsUsed >= 2, `used ${res.stats.parentsUsed} parents`);
      assert.equal(sched.seen[0]!.state, 'started');
      assert.equal(sched.seen[0]!.wantParents, 16);
      assert.equal(sched.seen.at(-1)!.state, 'done');
      assert.equal(sched.seen.at(-1)!.completedPieces, 41);
    });

    it('reports a lying parent as corrupt-piece, drops it, and completes from the others', async () => {
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore());
      t.register('liar', await fullStore(), {
        piece: (_i, data) => {
          const bad = Buffer.from(data);
          bad[0] = bad[0]! ^ 1;
          return bad;
        },
      });
      const sched = new FakeScheduler(() => answer([peer('liar'), peer('seed', 'seed')]));
      // More requests in flight than the seed takes (5), so the liar is always asked too.
      const dl = new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore(), rng: () => 0.01, maxInFlight: 6 }));
      const dropped: string[] = [];
      dl.on('parent', (e) => e.change === 'dropped' && dropped.push(`${e.parentId}:${e.reason}`));
      const res = await dl.run();
      assert.equal(res.outcome, 'done');
      assert.ok(res.stats.corruptPieces >= 1);
      assert.deepEqual(dropped, ['liar:corrupt-piece']);
      assert.deepEqual(sched.badPeers().map((b) => `${b.peerId}:${b.reason}`), ['liar:corrupt-piece']);
      assert.equal(res.stats.bytesByParent.liar, undefined);
      assert.equal(res.stats.bytesFromSeed, blob.length);
      // Never handed back by the scheduler again: a corrupt parent stays banned for the task.
    });

    it('drops a parent that dies mid-transfer, announces early for a replacement, and completes', async () => {
      const t = new LocalTransport({ streaming });
      const slow = () => new Promise<void>((r) => setTimeout(r, 10));
      t.register('seed', await fullStore(), { before: slow });
      let served = 0;
      t.register('mortal', await fullStore(), {
        before: (kind) => {
          if (kind === 'piece' && ++served > 3) {
            t.unregister('mortal');
            throw new PeerTransportError('unreachable', 'connection reset');
          }
        },
      });
      t.register('spare', await fullStore(), { before: slow });
      // The scheduler hands out the mortal first and the spare only when asked again.
      const sched = new FakeScheduler((_req, k) => answer(k === 1 ? [peer('mortal'), peer('seed', 'seed')] : [peer('spare')], { announceIntervalMs: 10_000 }));
      const dl = new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore(), minParents: 2, earlyAnnounceGapMs: 20 }));
      const res = await dl.run();
      assert.equal(res.outcome, 'done');
      const bad = sched.badPeers();
      assert.deepEqual(bad.map((b) => `${b.peerId}:${b.reason}`), ['mortal:unreachable']);
      const early = sched.seen.find((r) => r.state === 'downloading');
      assert.ok(early, 'an early announce was sent despite the 10 s interval');
      assert.ok(early!.wantParents > 0);
      if (res.outcome === 'done') assert.equal(digestOf(await readFile(res.path)), digest);
    });

    it('drops a parent that hangs (piece timeout), reports it slow (not unreachable), and completes elsewhere', async () => {
      // Endgame off: otherwise the seed would finish the hung pieces first and nobody would time out.
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore());
      t.register('hang', await fullStore(), { before: (kind) => (kind === 'piece' ? new Promise<void>(() => undefined) : undefined) });
      const sched = new FakeScheduler(() => answer([peer('hang'), peer('seed', 'seed')]));
      const dl = new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore(), pieceTimeoutBaseMs: 300, pieceTimeoutMinBps: 1e12, picker: { endgameMaxRequests: 1 } }));
      const res = await dl.run();
      assert.equal(res.outcome, 'done');
      assert.deepEqual(sched.badPeers().map((b) => `${b.peerId}:${b.reason}`), ['hang:slow']);
    });

    it('passes the back-to-source signal through', async () => {
      const sched = new FakeScheduler(() => ({ parents: [], announceIntervalMs: 50, backToSource: true }));
      const dl = new TaskDownloader(options({ scheduler: sched, transport: new LocalTransport({ streaming }), store: await emptyStore() }));
      const res = await dl.run();
      assert.equal(res.outcome, 'back-to-source');
      assert.equal(sched.seen.length, 1);
    });

    it('waits for the manifest (re-announcing), then downloads', async () => {
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore());
      const sched = new FakeScheduler((_r, k) => (k < 3 ? { parents: [], announceIntervalMs: 20, backToSource: false } : answer([peer('seed', 'seed')])));
      const res = await new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore() })).run();
      assert.equal(res.outcome, 'done');
      assert.ok(sched.seen.length >= 4);
    });

    it('a chain: B learns A\'s new pieces by long-polling A\'s bitfield while A downloads from the seed', async () => {
      const t = new LocalTransport({ streaming });
      const aStore = await emptyStore();
      t.register('A', aStore);
      const schedA = new FakeScheduler(() => answer([peer('seed', 'seed')]));
      const schedB = new FakeScheduler(() => answer([peer('A')]));
      // A is slowed down so B really follows it piece by piece.
      t.register('seed', (await fullStore()), { before: () => new Promise((r) => setTimeout(r, 2)) });
      const a = new TaskDownloader(options({ self: peer('A'), scheduler: schedA, transport: t, store: aStore }));
      const b = new TaskDownloader(options({ self: peer('B'), scheduler: schedB, transport: t, store: await emptyStore(), bitfieldWaitMs: 2000 }));
      const [ra, rb] = await Promise.all([a.run(), b.run()]);
      assert.equal(ra.outcome, 'done');
      assert.equal(rb.outcome, 'done');
      assert.equal(rb.stats.bytesFromPeers, blob.length);
      if (rb.outcome === 'done') assert.equal(digestOf(await readFile(rb.path)), digest);
    });

    it('fails with STALLED when nobody can serve, announcing failed', async () => {
      const sched = new FakeScheduler(() => answer([]));
      const dl = new TaskDownloader(options({ scheduler: sched, transport: new LocalTransport({ streaming }), store: await emptyStore(), stallTimeoutMs: 100, pieceTimeoutBaseMs: 10, pieceTimeoutMinBps: 1e12 }));
      await assert.rejects(dl.run(), (e) => e instanceof DownloadError && e.code === 'STALLED');
      assert.equal(sched.seen.at(-1)!.state, 'failed');
    });

    it('stops on abort and tells the scheduler it left', async () => {
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore(), { before: () => new Promise((r) => setTimeout(r, 20)) });
      const sched = new FakeScheduler(() => answer([peer('seed', 'seed')]));
      const ctl = new AbortController();
      const dl = new TaskDownloader(options({ scheduler: sched, transport: t, store: await emptyStore(), signal: ctl.signal }));
      dl.once('piece', () => ctl.abort());
      await assert.rejects(dl.run(), (e) => e instanceof DownloadError && e.code === 'ABORTED');
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(sched.seen.at(-1)!.state, 'left');
    });

    it('resumes from pieces already on disk', async () => {
      const t = new LocalTransport({ streaming });
      t.register('seed', await fullStore());
      const store = await emptyStore();
      const task = await store.openTask(manifest);
      for (let i = 0; i < 10; i++) await task.writePiece(i, blob.subarray(i * PS, (i + 1) * PS));
      const sched = new FakeScheduler(() => answer([peer('seed', 'seed')]));
      const res = await new TaskDownloader(options({ scheduler: sched, transport: t, store })).run();
      assert.equal(res.outcome, 'done');
      assert.equal(res.stats.piecesResumed, 10);
      assert.equal(res.stats.piecesFetched, 31);
    });
  });
}

/** A clock that only moves when the driver says so: what the fleet simulator will use. */
class VirtualClock implements Clock {
  private t = 0;
  private timers: Array<{ at: number; seq: number; fire: () => void }> = [];
  private seq = 0;
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fire: () => resolve() };
      this.timers.push(timer);
      signal?.addEventListener('abort', () => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal.reason);
      }, { once: true });
    });
  }
  /** Runs `work` to completion, advancing virtual time to the next timer whenever everything is idle. */
  async drive<T>(work: Promise<T>, maxSteps = 100_000): Promise<T> {
    let settled = false;
    const done = work.finally(() => (settled = true));
    for (let step = 0; step < maxSteps && !settled; step++) {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      if (settled || this.timers.length === 0) continue;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift()!;
      this.t = Math.max(this.t, next.at);
      next.fire();
    }
    return done;
  }
}

/** In-memory target: verifies like PieceTask, no disk. */
class MemoryTarget implements DownloadTarget {
  readonly bitfield: Bitfield;
  isComplete = false;
  constructor(private readonly m: PieceManifest) {
    this.bitfield = new Bitfield(m.pieceDigests.length);
  }
  async writePiece(index: number, data: Buffer): Promise<boolean> {
    if (this.bitfield.has(index)) return false;
    if (digestOf(data) !== this.m.pieceDigests[index]) throw new PeerError('PIECE_DIGEST_MISMATCH', `piece ${index}`);
    return this.bitfield.set(index);
  }
  async finalize(): Promise<string> {
    this.isComplete = true;
    return 'memory:';
  }
}

describe('TaskDownloader in virtual time (in-memory fakes, no disk, no real timers)', () => {
  // wantParents 2: releasing one of two parents leaves half, not a starving download (see below).
  async function swapAnnounce(swapSpreadMs: number | undefined, wantParents = 2) {
    const clock = new VirtualClock();
    const pieceSize = 1024;
    const blob = randomBytes(64 * pieceSize);
    const manifest = manifestOf(blob, pieceSize);
    const n = manifest.pieceDigests.length;
    const views: Record<string, string> = { seed: Bitfield.full(n).toBase64(), empty: new Bitfield(n).toBase64() };
    const transport: PeerTransport = {
      async bitfield(p, _d, since, waitMs, signal) {
        if (since !== undefined && waitMs) await clock.sleep(waitMs, signal);
        const bf = views[p.id]!;
        return { bitfield: bf, count: Bitfield.fromBase64(bf, n).count, total: n };
      },
      async piece(p, _d, i, signal) {
        // 400 ms a piece, 5 at a time: about 5 s, past the early swap announce at 2 s.
        await clock.sleep(400, signal);
        if (p.id !== 'seed') throw new PeerTransportError('not-found', 'no such piece');
        return blob.subarray(i * pieceSize, (i + 1) * pieceSize);
      },
    };
    const target = new MemoryTarget(manifest);
    const seen: AnnounceRequest[] = [];
    const at: number[] = [];
    const dl = new TaskDownloader({
      self: peer('me'),
      digest: manifest.digest,
      clock,
      rng: () => 0.5,
      idleParentMs: 500,
      wantParents,
      store: { openTask: async () => target },
      transport,
      scheduler: {
        announce: async (req) => {
          seen.push(JSON.parse(JSON.stringify(req)) as AnnounceRequest);
          at.push(clock.now());
          const parents = seen.length === 1 ? [peer('empty'), peer('seed', 'seed')] : [];
          return { parents, pieces: manifest, announceIntervalMs: 4000, backToSource: false, ...(swapSpreadMs !== undefined ? { swapSpreadMs } : {}) };
        },
      },
    });
    const released: string[] = [];
    dl.on('parent', (e) => e.change === 'released' && released.push(e.parentId));
    const res = await clock.drive(dl.run());
    assert.equal(res.outcome, 'done');
    assert.deepEqual(released, ['empty']);
    const swap = seen.find((r) => r.releasedParents?.length);
    assert.ok(swap, 'an announce carried the release');
    assert.deepEqual(swap!.releasedParents, ['empty']);
    assert.equal(swap!.badPeers, undefined, 'no fault reported');
    assert.ok(swap!.wantParents > 0, 'it asks for a replacement');
    assert.equal(res.stats.bytesByParent.seed, blob.length, 'the seed, always busy serving, was never released');
    const i = seen.indexOf(swap!);
    return { index: i, at: at[i]! };
  }

  it('releases a parent that has nothing for it (releasedParents, not badPeers) and asks for a replacement early', async () => {
    // The interval is 4 s: the swap goes out early, at half an interval (at least earlyAnnounceGapMs).
    const swap = await swapAnnounce(undefined);
    assert.ok(swap.index === 1 && swap.at <= 2000, `swap announce #${swap.index} at ${swap.at} ms`);
  });

  it('spreads the swap when the scheduler, over its announce budget, asks for it (swapSpreadMs)', async () => {
    // rng 0.5: half of min(swapSpreadMs 600, releaseSpreadMs 1000, half the interval 2000) after the half interval.
    const swap = await swapAnnounce(600);
    assert.ok(swap.index === 1 && swap.at > 2000 && swap.at <= 2300, `swap announce #${swap.index} at ${swap.at} ms`);
  });

  it('a download released down to under half of wantParents is starving: it asks again earlyAnnounceGapMs after the last announce (plus the spread)', async () => {
    // The empty parent goes at 1200 ms (three 400 ms piece-times), past the 1 s gap + 300 ms of spread: at once, not at 2 s + spread.
    const swap = await swapAnnounce(600, 16);
    assert.ok(swap.index === 1 && swap.at >= 1200 && swap.at <= 1350, `swap announce #${swap.index} at ${swap.at} ms`);
  });

  /** A download with two parents: `full` holds everything and only answers busy, `ok` serves. */
  async function busyParentRun(fullRole: 'seed' | 'agent') {
    const clock = new VirtualClock();
    const pieceSize = 1024;
    const blob = randomBytes(32 * pieceSize);
    const manifest = manifestOf(blob, pieceSize);
    const n = manifest.pieceDigests.length;
    const full = Bitfield.full(n).toBase64();
    let busyAnswers = 0;
    const transport: PeerTransport = {
      async bitfield(_p, _d, since, waitMs, signal) {
        if (since !== undefined && waitMs) await clock.sleep(waitMs, signal);
        return { bitfield: full, count: n, total: n };
      },
      async piece(p, _d, i, signal) {
        await clock.sleep(200, signal);
        if (p.id === 'full') {
          busyAnswers++;
          throw new PeerTransportError('busy', 'all upload slots taken');
        }
        return blob.subarray(i * pieceSize, (i + 1) * pieceSize);
      },
    };
    const target = new MemoryTarget(manifest);
    const seen: AnnounceRequest[] = [];
    const dl = new TaskDownloader({
      self: peer('me'),
      digest: manifest.digest,
      clock,
      rng: () => 0.5,
      wantParents: 2,
      store: { openTask: async () => target },
      transport,
      scheduler: {
        announce: async (req) => {
          seen.push(JSON.parse(JSON.stringify(req)) as AnnounceRequest);
          return { parents: seen.length === 1 ? [peer('full', fullRole), peer('ok')] : [], pieces: manifest, announceIntervalMs: 4000, backToSource: false };
        },
      },
    });
    const released: string[] = [];
    dl.on('parent', (e) => e.change === 'released' && released.push(e.parentId));
    const res = await clock.drive(dl.run());
    return { res, released, busyAnswers, seen, blob };
  }

  it('releases a parent that answers "busy" busyReleaseStreak times in a row, though it holds pieces we lack', async () => {
    const { res, released, busyAnswers, seen, blob } = await busyParentRun('agent');
    assert.equal(res.outcome, 'done');
    assert.deepEqual(released, ['full']);
    // Up to perParentLimit (3) requests are out to it at once, and it goes once none is.
    assert.ok(busyAnswers >= 4 && busyAnswers <= 6, `let go after the fourth "busy" in a row came back (${busyAnswers} answers)`);
    assert.deepEqual(seen.find((r) => r.releasedParents?.length)?.releasedParents, ['full'], 'reported as released, not as a fault');
    assert.equal(res.stats.bytesByParent.ok, blob.length);
  });

  it('keeps a seed that answers "busy" (it serves one piece per child at a time): a seed builds no busy streak', async () => {
    const { res, released, busyAnswers } = await busyParentRun('seed');
    assert.equal(res.outcome, 'done');
    assert.deepEqual(released, [], 'the seed was not let go');
    assert.ok(busyAnswers > 6, `it was asked again and again (${busyAnswers} busy answers), each after the base pause`);
  });

  for (const streamed of [true, false]) {
    it(`pays a download cap as the bytes arrive (${streamed ? 'streamed' : 'buffered'} bodies): requests start at once, busy answers cost nothing, the cap holds`, async () => {
      const clock = new VirtualClock();
      const pieceSize = 64 * 1024;
      const blob = randomBytes(16 * pieceSize);
      const manifest = manifestOf(blob, pieceSize);
      const n = manifest.pieceDigests.length;
      const rate = 256 * 1024;
      const burst = 16 * 1024;
      const limiter = new RateLimiter({ rate, burst, clock });
      const full = Bitfield.full(n).toBase64();
      const starts: number[] = [];
      let busyAnswers = 0;
      const body = (i: number) => blob.subarray(i * pieceSize, (i + 1) * pieceSize);
      const ask = (p: PeerInfo, i: number) => {
        starts.push(clock.now());
        // The seed serves one piece per child at a time: its other requests come back busy.
        if (p.id === 'seed' && starts.length % 2 === 0) {
          busyAnswers++;
          throw new PeerTransportError('busy', 'busy');
        }
        return body(i);
      };
      const transport: PeerTransport = {
        async bitfield(_p, _d, since, waitMs, signal) {
          if (since !== undefined && waitMs) await clock.sleep(waitMs, signal);
          return { bitfield: full, count: n, total: n };
        },
        async piece(p, _d, i) {
          return ask(p, i);
        },
        ...(streamed
          ? {
              async pieceStream(p: PeerInfo, _d: Digest, i: number) {
                const data = ask(p, i);
                return (async function* () {
                  for (let o = 0; o < data.length; o += 8192) yield data.subarray(o, o + 8192);
                })();
              },
            }
          : {}),
      };
      const target = new MemoryTarget(manifest);
      const streamTarget = Object.assign(target, {
        async writePieceStream(index: number, chunks: AsyncIterable<Buffer>) {
          const parts: Buffer[] = [];
          for await (const c of chunks) parts.push(c);
          return target.writePiece(index, Buffer.concat(parts));
        },
      });
      const dl = new TaskDownloader({
        self: peer('me'),
        digest: manifest.digest,
        clock,
        rng: () => 0.5,
        limiter,
        store: { openTask: async () => (streamed ? streamTarget : target) },
        transport,
        scheduler: { announce: async () => ({ parents: [peer('seed', 'seed'), peer('full')], pieces: manifest, announceIntervalMs: 60_000, backToSource: false }) },
      });
      const res = await clock.drive(dl.run());
      assert.equal(res.outcome, 'done');
      assert.ok(busyAnswers > 0, 'some requests were answered busy');
      // Paid up front, the first request would wait for its whole piece's tokens ((64 - 16) KiB at 256 KiB/s).
      assert.ok(starts.filter((t) => t === 0).length >= 3, `requests at t=0: ${starts.filter((t) => t === 0).length}`);
      // The cap: 1 MiB at 256 KiB/s, less the bucket, and no more: busy answers carried no bytes and
      // took no tokens (up front, each would have cost 0.25 s).
      const ideal = ((blob.length - burst) / rate) * 1000;
      const ms = res.stats.durationMs;
      assert.ok(ms >= ideal - 1 && ms <= ideal + 300, `${ms} ms for an ideal ${ideal} ms, ${busyAnswers} busy answers`);
    });
  }

  it('finishes fast despite a very slow parent: endgame duplicates its last requests on the fast one', async () => {
    const clock = new VirtualClock();
    const size = 64 * 1024;
    const blob = randomBytes(size);
    const pieceSize = 1024;
    const manifest = manifestOf(blob, pieceSize);
    const { pieceDigests } = manifest;
    const latency: Record<string, number> = { fast: 10, slow: 2000 };
    const full = Bitfield.full(pieceDigests.length).toBase64();
    const transport: PeerTransport = {
      async bitfield(_p, _d, since, waitMs, signal) {
        if (since !== undefined && waitMs) await clock.sleep(waitMs, signal);
        return { bitfield: full, count: pieceDigests.length, total: pieceDigests.length };
      },
      async piece(p, _d, i, signal) {
        await clock.sleep(latency[p.id]!, signal);
        return blob.subarray(i * pieceSize, (i + 1) * pieceSize);
      },
    };
    const target = new MemoryTarget(manifest);
    const announces: string[] = [];
    const dl = new TaskDownloader({
      self: peer('me'),
      digest: manifest.digest,
      clock,
      rng: () => 0.5,
      store: { openTask: async () => target },
      transport,
      scheduler: {
        announce: async (req) => {
          announces.push(`${clock.now()}:${req.state}`);
          return { parents: [peer('slow'), peer('fast')], pieces: manifest, announceIntervalMs: 3000, backToSource: false };
        },
      },
    });
    const t0 = performance.now();
    const res = await clock.drive(dl.run());
    assert.equal(res.outcome, 'done');
    assert.ok(target.isComplete);
    // 64 pieces at 3 in flight on the fast parent ≈ 220 ms; without endgame the slow parent's last pieces would add 2 s.
    assert.ok(res.stats.durationMs < 1500, `virtual duration ${res.stats.durationMs} ms`);
    assert.ok((res.stats.bytesByParent.fast ?? 0) > (res.stats.bytesByParent.slow ?? 0));
    assert.equal(announces[0], '0:started');
    assert.ok(announces.at(-1)!.endsWith(':done'));
    assert.ok(performance.now() - t0 < 3000, 'virtual time, not real time');
  });
});

describe('piece timeouts', () => {
  const MiB4 = 4 * 1024 * 1024;
  it('owe each request in flight its share of the slowest whole-download rate', () => {
    const t = resolveDownloaderTuning({});
    // 8 requests sharing 128 KiB/s: a 4 MiB piece may take 5 s + 256 s.
    assert.equal(pieceTimeoutMs(MiB4, t), 5000 + 256_000);
    // A 6 Mbit/s downlink shared by 8 requests moves a 4 MiB piece in ~45 s: well inside.
    assert.ok(pieceTimeoutMs(MiB4, t) > (MiB4 / (750_000 / 8)) * 1000);
    assert.equal(pieceTimeoutMs(MiB4, { ...t, maxInFlight: 1 }), 5000 + 32_000);
  });
  it('grow with a download cap tighter than pieceTimeoutMinBps; a stall is two piece timeouts without a piece', () => {
    const t = resolveDownloaderTuning({ maxInFlight: 2 });
    assert.equal(pieceTimeoutMs(MiB4, t, 64 * 1024), 5000 + 128_000);
    assert.equal(pieceTimeoutMs(MiB4, t, 10 * 1024 * 1024), pieceTimeoutMs(MiB4, t));
    assert.equal(stallLimitMs(MiB4, t), 2 * (5000 + 64_000));
    assert.equal(stallLimitMs(MiB4, t, 16 * 1024), 2 * (5000 + 512_000));
    assert.equal(stallLimitMs(64 * 1024, t), 120_000);
  });
});
