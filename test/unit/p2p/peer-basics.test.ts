// Bitfield wire form and the token-bucket rate limiter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { Bitfield } from '../../../src/p2p/peer/bitfield.js';
import { RateLimiter, pace } from '../../../src/p2p/peer/rate-limiter.js';
import { isPeerError } from '../../../src/p2p/peer/errors.js';

describe('Bitfield', () => {
  it('is big-endian: piece 0 is the high bit of byte 0', () => {
    const bf = new Bitfield(10);
    bf.set(0);
    bf.set(9);
    assert.deepEqual([...bf.toBytes()], [0x80, 0x40]);
    assert.equal(bf.toBase64(), Buffer.from([0x80, 0x40]).toString('base64'));
    assert.equal(bf.count, 2);
    assert.equal(bf.isComplete(), false);
    assert.equal(bf.set(0), false, 'setting twice is not new');
    assert.equal(bf.count, 2);
  });

  it('round-trips through base64 for any size and set of bits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.uniqueArray(fc.nat({ max: Math.max(0, n - 1) }), { maxLength: n }))), ([n, bits]) => {
        const bf = new Bitfield(n);
        for (const b of bits) if (n > 0) bf.set(b);
        const back = Bitfield.fromBase64(bf.toBase64(), n);
        assert.equal(back.count, bf.count);
        for (let i = 0; i < n; i++) assert.equal(back.has(i), bf.has(i));
        assert.equal(back.isComplete(), bf.count === n);
      }),
    );
  });

  it('refuses a wrong length or bits past the end', () => {
    assert.throws(() => Bitfield.fromBase64(Buffer.from([0xff]).toString('base64'), 9), (e) => isPeerError(e, 'BITFIELD_INVALID'));
    assert.throws(() => Bitfield.fromBase64(Buffer.from([0xff]).toString('base64'), 7), (e) => isPeerError(e, 'BITFIELD_INVALID'));
    assert.throws(() => Bitfield.fromBase64('***', 8), (e) => isPeerError(e, 'BITFIELD_INVALID'));
    assert.equal(Bitfield.fromBase64(Buffer.from([0xfe]).toString('base64'), 7).isComplete(), true);
    assert.throws(() => new Bitfield(3).set(3), (e) => isPeerError(e, 'PIECE_OUT_OF_RANGE'));
    assert.equal(new Bitfield(3).has(5), false);
  });

  it('full() and clear()', () => {
    const bf = Bitfield.full(13);
    assert.equal(bf.isComplete(), true);
    assert.equal(bf.clear(12), true);
    assert.deepEqual(bf.missing(), [12]);
  });
});

describe('RateLimiter', () => {
  it('is free when unlimited', async () => {
    const l = new RateLimiter();
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) await l.take(64 * 1024 * 1024);
    assert.ok(performance.now() - t0 < 50);
  });

  it('paces 1 MiB at 4 MiB/s to about 0.19 s (burst 256 KiB), and concurrent takers share the rate', async () => {
    const l = new RateLimiter({ rate: 4 * 1024 * 1024 });
    const t0 = performance.now();
    await Promise.all([l.take(512 * 1024), l.take(512 * 1024)]);
    const ms = performance.now() - t0;
    // (1 MiB - 256 KiB burst) / 4 MiB/s = 187.5 ms
    assert.ok(ms >= 170, `took ${ms} ms`);
    assert.ok(ms < 1500, `took ${ms} ms`);
  });

  it('gives tokens back on abort', async () => {
    const l = new RateLimiter({ rate: 1024 * 1024, burst: 1024 });
    const ctl = new AbortController();
    const p = l.take(10 * 1024 * 1024, ctl.signal);
    ctl.abort();
    await assert.rejects(p);
    const t0 = performance.now();
    await l.take(512);
    assert.ok(performance.now() - t0 < 100);
  });

  it('pace() paces a stream and counts bytes', async () => {
    const l = new RateLimiter({ rate: 8 * 1024 * 1024 });
    let counted = 0;
    let received = 0;
    const t0 = performance.now();
    await pipeline(
      Readable.from([Buffer.alloc(1024 * 1024), Buffer.alloc(1024 * 1024)]),
      pace(l, { onBytes: (n) => (counted += n) }),
      new Writable({
        write(c: Buffer, _e, done) {
          received += c.length;
          done();
        },
      }),
    );
    const ms = performance.now() - t0;
    assert.equal(counted, 2 * 1024 * 1024);
    assert.equal(received, 2 * 1024 * 1024);
    // (2 MiB - 256 KiB) / 8 MiB/s ≈ 219 ms
    assert.ok(ms >= 190, `took ${ms} ms`);
  });
});
