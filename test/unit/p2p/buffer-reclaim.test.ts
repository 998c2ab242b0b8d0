// startBufferReclaim (src/p2p/agent/buffer-reclaim.ts): buffers nobody references any more, above
// the limit, are given back by a full GC; under the limit nothing runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBufferReclaim } from '../../../src/p2p/agent/buffer-reclaim.js';

const MiB = 1024 * 1024;

test('a full GC gives back unreferenced buffers once they pass the limit, and only then', async () => {
  const reclaim = startBufferReclaim({ limitBytes: 8 * MiB, everyMs: 20 });
  try {
    // Kept buffers under the limit: nothing to do.
    const kept = Array.from({ length: 4 }, () => Buffer.alloc(MiB, 1));
    await sleep(100);
    assert.equal(reclaim.collections, 0);
    // 24 MiB of garbage, promoted past the young generation so that only a full GC frees it.
    let junk: Buffer[] | null = Array.from({ length: 24 }, () => Buffer.alloc(MiB, 2));
    for (let i = 0; i < 3; i++) await sleep(10);
    junk = null;
    await sleep(200);
    assert.ok(reclaim.collections >= 1, 'a collection ran');
    assert.ok(process.memoryUsage().arrayBuffers < 8 * MiB, `ArrayBuffers back under the limit (${process.memoryUsage().arrayBuffers} bytes)`);
    assert.equal(kept.length, 4);
  } finally {
    reclaim.stop();
  }
});
