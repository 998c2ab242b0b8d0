// How a capped agent shares its uplink among children: progressWeight (the rule, which the
// simulator uses too), UploadShares (weighted fair queuing over the cap) in virtual time, and the
// whole path over real HTTP: `?held=N` from HttpPeerTransport to createPeerRoutes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf } from '../../../src/oci/digest.js';
import type { PeerInfo } from '../../../src/p2p/protocol.js';
import type { Clock } from '../../../src/p2p/peer/clock.js';
import { PieceStore } from '../../../src/p2p/peer/piece-store.js';
import { createPeerRoutes } from '../../../src/p2p/peer/server-routes.js';
import { HttpPeerTransport } from '../../../src/p2p/peer/http-transport.js';
import { RateLimiter } from '../../../src/p2p/peer/rate-limiter.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE, UploadShares, progressWeight, type UploadShare } from '../../../src/p2p/peer/upload-shares.js';
import { parseWeightBase } from '../../../src/cli/p2p-commands.js';

/** progressWeight of each of several concurrent uploads, given their children's held counts. */
function progressWeights(held: Array<number | undefined>, base?: number): number[] {
  const all = held.map((h) => ({ held: h }));
  return all.map((u) => progressWeight(u, all, base));
}

describe('progressWeight', () => {
  it('gives the children furthest behind the most, equal holdings equal shares', () => {
    assert.deepEqual(progressWeights([5, 0, 5, 9], 0.5), [0.5, 1, 0.5, 0.125]);
    assert.deepEqual(progressWeights([3, 3, 3]), [1, 1, 1]);
    assert.deepEqual(progressWeights([0, 7], 1), [1, 1], 'base 1 is an even split');
    assert.deepEqual(progressWeights([]), []);
  });

  it('ranks a child that did not say how much it holds behind every one that did', () => {
    const w = progressWeights([undefined, 40, 2]);
    assert.equal(w[2], 1);
    assert.equal(w[1], DEFAULT_UPLOAD_WEIGHT_BASE);
    assert.equal(w[0], DEFAULT_UPLOAD_WEIGHT_BASE ** 2);
  });
});

/** Time moves only when the test says; timers fire in order. */
class ManualClock implements Clock {
  t = 0;
  private timers: Array<{ at: number; fire: () => void }> = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.timers.push({ at: this.t + ms, fire: resolve }));
  }
  /** Advances to `until`, letting promise chains run between timers. */
  async runUntil(until: number): Promise<void> {
    for (;;) {
      await flush();
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fire();
    }
    this.t = until;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/** An upload that keeps taking 64 KiB slices until stopped; counts what it was granted. */
function greedy(share: UploadShare) {
  const state = { bytes: 0, stopped: false };
  void (async () => {
    while (!state.stopped) {
      await share.take(64 * 1024);
      if (!state.stopped) state.bytes += 64 * 1024;
    }
  })();
  return state;
}

describe('UploadShares', () => {
  const RATE = 10 * 1024 * 1024;

  it('splits a capped uplink by the weights, and keeps to the cap', async () => {
    const clock = new ManualClock();
    const shares = new UploadShares(new RateLimiter({ rate: RATE, clock }), { base: 0.5 });
    const behind = greedy(shares.openShare(0));
    const ahead = greedy(shares.openShare(30));
    await clock.runUntil(4000);
    behind.stopped = ahead.stopped = true;
    const total = behind.bytes + ahead.bytes;
    assert.ok(Math.abs(total - 4 * RATE) <= 4 * 64 * 1024 + 256 * 1024, `served ${total} bytes in 4 s at ${RATE} B/s`);
    const ratio = behind.bytes / ahead.bytes;
    assert.ok(ratio > 1.8 && ratio < 2.2, `weights 1 : 0.5 gave ${behind.bytes} : ${ahead.bytes}`);
  });

  it('is work-conserving: an upload alone gets the whole cap, whatever its weight', async () => {
    const clock = new ManualClock();
    const shares = new UploadShares(new RateLimiter({ rate: RATE, clock }), { base: 0.5 });
    const behind = shares.openShare(0);
    const ahead = greedy(shares.openShare(30));
    behind.close();
    await clock.runUntil(2000);
    ahead.stopped = true;
    assert.ok(ahead.bytes >= 2 * RATE - 2 * 64 * 1024, `alone it got ${ahead.bytes} of ${2 * RATE}`);
    assert.equal(shares.active, 1);
  });

  it('an equal split when every child holds the same', async () => {
    const clock = new ManualClock();
    const shares = new UploadShares(new RateLimiter({ rate: RATE, clock }));
    const a = greedy(shares.openShare(4));
    const b = greedy(shares.openShare(4));
    await clock.runUntil(3000);
    a.stopped = b.stopped = true;
    assert.ok(Math.abs(a.bytes - b.bytes) <= 2 * 64 * 1024, `${a.bytes} vs ${b.bytes}`);
  });

  it('costs nothing without a cap, and an aborted take gives its place up', async () => {
    const clock = new ManualClock();
    const cap = new RateLimiter({ clock });
    const shares = new UploadShares(cap);
    const s = shares.openShare(1);
    await s.take(1 << 30);
    cap.setRate(1024);
    const ac = new AbortController();
    const first = s.take(1024 * 1024); // passing through the cap: 1 MiB of debt at 1 KiB/s
    const waiting = s.take(1024, ac.signal);
    ac.abort(new Error('child went away'));
    await assert.rejects(waiting, /child went away/);
    await clock.runUntil(1100 * 1000);
    await first;
    s.close();
    assert.equal(shares.active, 0);
  });

  it('refuses a base outside (0, 1]', () => {
    assert.throws(() => new UploadShares(new RateLimiter({ rate: 1 }), { base: 0 }), RangeError);
    assert.throws(() => new UploadShares(new RateLimiter({ rate: 1 }), { base: 1.5 }), RangeError);
  });
});

describe('uplink shares over HTTP', () => {
  it('a child that holds nothing gets its piece before one that holds most of the blob', async () => {
    const root = await mkdtemp(join(tmpdir(), 'shoal-shares-'));
    const PS = 4 * 1024 * 1024;
    const blob = randomBytes(PS * 3);
    const digest = digestOf(blob);
    const store = await PieceStore.open(join(root, 'agent'), { durable: false });
    await store.writeCompleteBlob(digest, Readable.from([blob]), { pieceSize: PS });
    // 8 MiB/s: each 4 MiB piece (16 paced slices of 256 KiB) takes ~0.5 s alone, ~1 s when two share evenly.
    const limiter = new RateLimiter({ rate: 8 * 1024 * 1024 });
    const routes = createPeerRoutes({ store, uploadLimiter: limiter, uploadShares: new UploadShares(limiter, { base: 0.25 }) });
    const server = createServer((req, res) => {
      if (!routes.handlePeerRequest(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const agent: PeerInfo = { id: 'agent-1', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, role: 'agent', labels: {} };
    const transport = new HttpPeerTransport({});
    try {
      const finished: string[] = [];
      const get = (index: number, held: number, who: string) =>
        transport.piece(agent, digest, index, new AbortController().signal, PS, held).then((buf) => {
          finished.push(who);
          assert.ok(buf.equals(blob.subarray(index * PS, (index + 1) * PS)), `${who} got the right bytes`);
        });
      // The child far ahead asks first, so arrival order alone would favour it.
      const ahead = get(1, 3, 'ahead');
      await new Promise((r) => setTimeout(r, 50));
      await Promise.all([ahead, get(2, 0, 'behind')]);
      assert.deepEqual(finished, ['behind', 'ahead']);
      assert.equal(routes.stats.piecesServed, 2);
    } finally {
      routes.close();
      await transport.close();
      await new Promise((r) => server.close(r));
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('shoal agent --upload-weight-base', () => {
  it('takes a number in (0, 1] and says what to use otherwise', () => {
    assert.equal(parseWeightBase('0.7'), 0.7);
    assert.equal(parseWeightBase('1'), 1);
    for (const bad of ['0', '1.5', 'even', '']) assert.throws(() => parseWeightBase(bad), /use a number in \(0, 1\]/);
  });
});
