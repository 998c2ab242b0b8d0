// UploadSlots (src/p2p/peer/upload-slots.ts): free slots at once, a short FIFO line with a bounded
// wait, busy past it, and a waiter that leaves (the child hung up) losing its place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UploadSlots } from '../../../src/p2p/peer/upload-slots.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

test('free slots are taken at once; past them one request waits and gets the next released slot', async () => {
  const s = new UploadSlots({ slots: 2, queueLength: 1, queueWaitMs: 1000 });
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), false);
  let granted: boolean | undefined;
  const waiting = s.wait().then((ok) => (granted = ok));
  assert.equal(s.waiting, 1);
  // The line is full: the next one is busy at once.
  assert.equal(await s.wait(), false);
  await tick();
  assert.equal(granted, undefined);
  s.release();
  await waiting;
  assert.equal(granted, true);
  assert.equal(s.inUse, 2, 'the released slot went to the waiter, not back to the pool');
  s.release();
  s.release();
  assert.equal(s.inUse, 0);
});

test('a wait runs out after queueWaitMs, and an aborted waiter leaves the line', async () => {
  const s = new UploadSlots({ slots: 1, queueLength: 2, queueWaitMs: 40 });
  assert.equal(s.tryAcquire(), true);
  const t0 = performance.now();
  assert.equal(await s.wait(), false);
  assert.ok(performance.now() - t0 >= 35, 'it waited before answering busy');
  const gone = new AbortController();
  const leaving = s.wait(gone.signal);
  const staying = s.wait();
  assert.equal(s.waiting, 2);
  gone.abort();
  assert.equal(await leaving, false);
  assert.equal(s.waiting, 1);
  s.release();
  assert.equal(await staying, true);
  assert.equal(s.inUse, 1);
});

test('queueLength 0 answers busy at once, as the server did before the line', async () => {
  const s = new UploadSlots({ slots: 1, queueLength: 0 });
  assert.equal(s.tryAcquire(), true);
  const t0 = performance.now();
  assert.equal(await s.wait(), false);
  assert.ok(performance.now() - t0 < 20);
});

test('--upload-queue and --upload-queue-wait reach the peer options, with the defaults and clear errors', async () => {
  const { peerOptions, parseCount } = await import('../../../src/cli/peer-flags.js');
  const { DEFAULT_UPLOAD_QUEUE, DEFAULT_UPLOAD_QUEUE_WAIT_MS } = await import('../../../src/p2p/peer/upload-slots.js');
  const base = { listen: '127.0.0.1:0', scheduler: 'http://127.0.0.1:1', registry: 'http://127.0.0.1:2', data: '/tmp/x', uploadLimit: '0', backToSourceLimit: '0', quota: '0' };
  const dflt = peerOptions(base);
  assert.equal(dflt.uploadQueue, DEFAULT_UPLOAD_QUEUE);
  assert.equal(dflt.uploadQueueWaitMs, DEFAULT_UPLOAD_QUEUE_WAIT_MS);
  const set = peerOptions({ ...base, uploadQueue: '0', uploadQueueWait: '2s' });
  assert.equal(set.uploadQueue, 0);
  assert.equal(set.uploadQueueWaitMs, 2000);
  for (const bad of ['-1', '1.5', 'many']) assert.throws(() => parseCount(bad, '--upload-queue'), /invalid --upload-queue .*whole number >= 0/);
});

test('--upload-task-share reaches the peer options: off unless given a duration', async () => {
  const { peerOptions } = await import('../../../src/cli/peer-flags.js');
  const base = { listen: '127.0.0.1:0', scheduler: 'http://127.0.0.1:1', registry: 'http://127.0.0.1:2', data: '/tmp/x', uploadLimit: '0', backToSourceLimit: '0', quota: '0' };
  assert.equal(peerOptions(base).uploadTaskShareMs, 0);
  assert.equal(peerOptions({ ...base, uploadTaskShare: '0' }).uploadTaskShareMs, 0);
  assert.equal(peerOptions({ ...base, uploadTaskShare: '2s' }).uploadTaskShareMs, 2000);
  assert.throws(() => peerOptions({ ...base, uploadTaskShare: 'soon' }), /invalid duration "soon"/);
});

test('task shares: each task asked for lately may hold an even share of the slots, rounded up; alone, a task may hold them all', async () => {
  const { TaskSlotShares } = await import('../../../src/p2p/peer/task-shares.js');
  const s = new TaskSlotShares(32, 1000);
  s.asked('a', 0);
  assert.equal(s.cap(0), 32, 'one task asked for: every slot');
  s.asked('b', 10);
  s.asked('c', 20);
  assert.equal(s.cap(20), 11, '32 slots over 3 tasks, rounded up');
  for (let i = 0; i < 11; i++) s.took('a');
  assert.equal(s.mayTake('a', 30), false, 'a holds its share');
  assert.equal(s.mayTake('b', 30), true);
  // b and c stop asking: after the window only a counts, and may take the rest.
  s.asked('a', 1500);
  assert.equal(s.cap(1500), 32);
  assert.equal(s.mayTake('a', 1500), true);
  s.gaveBack('a');
  assert.equal(s.holding('a'), 10);
});

test('with task shares, a task over its share is refused a free slot that another task takes; the line stays first come', async () => {
  let now = 0;
  const s = new UploadSlots({ slots: 4, queueLength: 1, queueWaitMs: 1000, taskShareWindowMs: 1000, now: () => now });
  // Two tasks asked for: 2 slots each.
  assert.equal(s.tryAcquire('a'), true);
  assert.equal(s.tryAcquire('b'), true);
  assert.equal(s.tryAcquire('a'), true);
  assert.equal(s.tryAcquire('a'), false, 'a holds its 2 of 4 although a slot is free');
  let granted: boolean | undefined;
  const waiting = s.wait(undefined, 'a').then((ok) => (granted = ok));
  assert.equal(s.waiting, 1);
  assert.equal(s.tryAcquire('b'), true, 'the free slot goes to b, within its share, past the waiting a');
  assert.equal(s.inUse, 4);
  assert.equal(s.tryAcquire('b'), false, 'every slot taken');
  // b gives one back: the waiter takes it over, although a is at its share (the line is one long).
  s.release('b');
  await waiting;
  assert.equal(granted, true);
  assert.equal(s.inUse, 4);
  s.release('a');
  s.release('a');
  s.release('a');
  s.release('b');
  assert.equal(s.inUse, 0);
  // The shares follow demand: once b has not been asked for within the window, a may take every slot.
  now = 5000;
  for (let i = 0; i < 4; i++) assert.equal(s.tryAcquire('a'), true);
  // Without a task the slots are first come, first served.
  s.release('a');
  assert.equal(s.tryAcquire(), true);
});

test('without a share window a blob may take every slot (the default for seeds and agents)', () => {
  const s = new UploadSlots({ slots: 2 });
  assert.equal(s.tryAcquire('a'), true);
  assert.equal(s.tryAcquire('b'), true);
  s.release('b');
  assert.equal(s.tryAcquire('a'), true, 'no shares: one blob may take every slot');
  assert.equal(s.tryAcquire('b'), false, 'every slot taken');
});

test('perChild: a child at its limit is busy at once, even with slots free and the line empty; others still get slots', async () => {
  const s = new UploadSlots({ slots: 3, queueLength: 1, queueWaitMs: 1000, perChild: 1 });
  assert.equal(s.tryAcquire('blob', 'a'), true);
  assert.equal(s.childFull('a'), true);
  assert.equal(s.tryAcquire('blob', 'a'), false, 'a holds its one slot');
  const t0 = performance.now();
  assert.equal(await s.wait(undefined, 'blob', 'a'), false, 'and does not wait in line for another');
  assert.ok(performance.now() - t0 < 20);
  assert.equal(s.waiting, 0);
  assert.equal(s.tryAcquire('blob', 'b'), true, 'another child takes a free slot');
  assert.equal(s.tryAcquire('other', undefined), true, 'a request that names no child is not limited');
  // Full now: c waits in line and takes a's slot when a gives it back.
  const c = s.wait(undefined, 'blob', 'c');
  s.release('blob', 'a');
  assert.equal(await c, true);
  assert.equal(s.childFull('a'), false, 'a may ask again');
  assert.equal(s.childFull('c'), true, 'the slot handed over counts for c');
  s.release('blob', 'b');
  assert.equal(s.tryAcquire('blob', 'a'), true);
  assert.equal(s.inUse, 3);
});

test('uploadsPerChildFor: one piece at a time per child from a seed, no limit from an agent', async () => {
  const { uploadsPerChildFor } = await import('../../../src/p2p/peer/upload-slots.js');
  assert.equal(uploadsPerChildFor('seed'), 1);
  assert.equal(uploadsPerChildFor('agent'), 0);
  const agentLike = new UploadSlots({ slots: 2, perChild: uploadsPerChildFor('agent') });
  assert.equal(agentLike.tryAcquire('blob', 'a'), true);
  assert.equal(agentLike.tryAcquire('blob', 'a'), true);
});

test('--uploads-per-child reaches the peer options only when given, as a count', async () => {
  const { peerOptions } = await import('../../../src/cli/peer-flags.js');
  const base = { listen: '127.0.0.1:0', scheduler: 'http://127.0.0.1:1', registry: 'http://127.0.0.1:2', data: '/tmp/x', uploadLimit: '0', backToSourceLimit: '0', quota: '0' };
  assert.equal('uploadsPerChild' in peerOptions(base), false, 'absent: the role decides (uploadsPerChildFor)');
  assert.equal(peerOptions({ ...base, uploadsPerChild: '0' }).uploadsPerChild, 0);
  assert.equal(peerOptions({ ...base, uploadsPerChild: '2' }).uploadsPerChild, 2);
  assert.throws(() => peerOptions({ ...base, uploadsPerChild: 'many' }), /--uploads-per-child/);
});
