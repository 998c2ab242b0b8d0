// The simulator's agenda and virtual clock: events come out by time, same-time events in the
// order they were scheduled (what makes runs repeatable), aborted entries are skipped and
// compacted away, and sleeps resolve at their virtual instant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventQueue } from '../../../src/sim/engine/queue.js';
import { VirtualTime } from '../../../src/sim/engine/time.js';

test('the agenda pops by time, and same-time entries first-scheduled first (random pushes and pops)', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(-1)), { maxLength: 400 }), (ops) => {
      const q = new EventQueue();
      const model: Array<{ t: number; id: number }> = [];
      let id = 0;
      const popped: number[] = [];
      const expected: number[] = [];
      const popBoth = () => {
        model.sort((a, b) => a.t - b.t || a.id - b.id);
        expected.push(model.shift()!.id);
        q.pop()!();
      };
      for (const op of ops) {
        if (op >= 0) {
          const mine = id++;
          model.push({ t: op, id: mine });
          q.push(op, () => popped.push(mine));
        } else if (model.length > 0) popBoth();
        assert.equal(q.size, model.length);
      }
      while (model.length > 0) popBoth();
      assert.deepEqual(popped, expected);
      assert.equal(q.pop(), undefined);
      assert.equal(q.peekTime(), Infinity);
    }),
    { numRuns: 300 },
  );
});

test('compaction drops aborted entries and keeps the order of the rest', () => {
  const q = new EventQueue();
  const out: number[] = [];
  const controllers: AbortController[] = [];
  for (let i = 0; i < 1000; i++) {
    const c = new AbortController();
    controllers.push(c);
    q.push(1000 - (i % 100), () => out.push(i), c.signal);
  }
  for (let i = 0; i < 1000; i += 2) controllers[i]!.abort();
  q.compact();
  assert.equal(q.size, 500);
  for (let fn = q.pop(); fn; fn = q.pop()) fn();
  const expected = Array.from({ length: 500 }, (_, k) => 2 * k + 1).sort((a, b) => (1000 - (a % 100)) - (1000 - (b % 100)) || a - b);
  assert.deepEqual(out, expected);
});

test('virtual time: at/after/sleep run at their instants, aborted ones never run', async () => {
  const time = new VirtualTime();
  const seen: string[] = [];
  time.at(30, () => seen.push(`at30@${time.now()}`));
  time.after(10, () => seen.push(`after10@${time.now()}`));
  const gone = new AbortController();
  time.at(20, () => seen.push('aborted'), gone.signal);
  gone.abort();
  void time.sleep(25).then(() => seen.push(`slept25@${time.now()}`));
  await time.run();
  assert.deepEqual(seen, ['after10@10', 'slept25@25', 'at30@30']);
  assert.equal(time.now(), 30);
});
