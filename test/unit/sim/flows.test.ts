// The flow model's max-min sharing on cases small enough to check by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualTime } from '../../../src/sim/engine/time.js';
import { FlowNetwork } from '../../../src/sim/net/flows.js';

const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(b)), `${msg ?? ''} ${a} != ${b}`);

test('two flows on one link split it evenly; finish times follow', async () => {
  const time = new VirtualTime();
  const net = new FlowNetwork(time, 0);
  const l = net.addLink(100); // bytes/s
  const done: Array<[string, number]> = [];
  const a = net.start([l], 50, () => done.push(['a', time.now()]));
  const b = net.start([l], 150, () => done.push(['b', time.now()]));
  await time.run({ until: 0 });
  close(net.rateOf(a), 50);
  close(net.rateOf(b), 50);
  await time.run();
  // a: 50 B at 50 B/s -> 1 s; then b alone: 100 B left at 100 B/s -> 2 s.
  assert.deepEqual(done.map((d) => d[0]), ['a', 'b']);
  close(done[0]![1], 1000);
  close(done[1]![1], 2000);
});

test('a flow held back elsewhere leaves its share to the others (and takes it back when freed)', async () => {
  const time = new VirtualTime();
  const net = new FlowNetwork(time, 0);
  const A = net.addLink(100);
  const B = net.addLink(30);
  const f1 = net.start([A, B], 1e9, () => undefined);
  const f2 = net.start([A], 1e9, () => undefined);
  await time.run({ until: 0 });
  close(net.rateOf(f1), 30, 'f1 bottlenecked on B');
  close(net.rateOf(f2), 70, 'f2 takes the rest of A');
  // A third flow on B halves f1, and f2 picks up what f1 gave back on A.
  let f3Done = -1;
  const f3 = net.start([B], 15, () => (f3Done = time.now()));
  await time.run({ until: 0 });
  close(net.rateOf(f1), 15);
  close(net.rateOf(f3), 15);
  close(net.rateOf(f2), 85);
  // f3 (15 B at 15 B/s) ends at 1 s: f1 goes back to 30, f2 to 70.
  await time.run({ until: 1000 });
  close(f3Done, 1000);
  close(net.rateOf(f1), 30);
  close(net.rateOf(f2), 70);
  net.abort(f1);
  await time.run({ until: 1000 });
  close(net.rateOf(f2), 100, 'an aborted flow frees its capacity');
  net.abort(f2);
});

test('max-min over a chain: every link saturated or every flow at its bottleneck', async () => {
  // Links: L0 cap 10, L1 cap 20, L2 cap 30. Flows: x on L0+L1, y on L1+L2, z on L2, w on L0.
  // Progressive filling: L0 share 5 (x, w) is the lowest -> x=w=5; L1 left 15 for y;
  // L2: y=15 would leave 15 for z; check L2 share before: (30)/2=15 vs L1 (20-5)/1=15 -> y=15, z=15.
  const time = new VirtualTime();
  const net = new FlowNetwork(time, 0);
  const [L0, L1, L2] = [net.addLink(10), net.addLink(20), net.addLink(30)];
  const x = net.start([L0, L1], 1e9, () => undefined);
  const y = net.start([L1, L2], 1e9, () => undefined);
  const z = net.start([L2], 1e9, () => undefined);
  const w = net.start([L0], 1e9, () => undefined);
  await time.run({ until: 0 });
  close(net.rateOf(x), 5);
  close(net.rateOf(w), 5);
  close(net.rateOf(y), 15);
  close(net.rateOf(z), 15);
  for (const f of [x, y, z, w]) net.abort(f);
});

test('with a coalescing window a new flow first takes the residual, then its fair share', async () => {
  const time = new VirtualTime();
  const net = new FlowNetwork(time, 10);
  const l = net.addLink(100);
  const a = net.start([l], 1e9, () => undefined);
  await time.run({ until: 10 });
  close(net.rateOf(a), 100);
  time.at(20, () => undefined);
  await time.run({ until: 20 });
  const b = net.start([l], 1e9, () => undefined);
  // Nothing left on the link: b waits for the recomputation at most one window.
  close(net.rateOf(b), 0);
  await time.run({ until: 30 });
  close(net.rateOf(a), 50);
  close(net.rateOf(b), 50);
  net.abort(a);
  net.abort(b);
});

test('random networks: no link over capacity and every flow has a bottleneck where it gets the most (max-min)', async () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let round = 0; round < 40; round++) {
    const time = new VirtualTime();
    const net = new FlowNetwork(time, 0);
    const L = 2 + Math.floor(rnd() * 8);
    const caps = Array.from({ length: L }, () => 10 + Math.floor(rnd() * 90));
    const links = caps.map((c) => net.addLink(c));
    const flows = Array.from({ length: 1 + Math.floor(rnd() * 15) }, () => {
      const path = links.filter(() => rnd() < 0.4);
      if (path.length === 0) path.push(links[Math.floor(rnd() * L)]!);
      return { path, f: net.start(path, 1e12, () => undefined) };
    });
    await time.run({ until: 0 });
    const use = new Array<number>(L).fill(0);
    for (const { path, f } of flows) for (const l of path) use[l]! += net.rateOf(f);
    for (let l = 0; l < L; l++) assert.ok(use[l]! <= caps[l]! * (1 + 1e-9), `link ${l} carries ${use[l]} > ${caps[l]}`);
    for (const { path, f } of flows) {
      const r = net.rateOf(f);
      // Max-min: some link on its path is full and no flow on that link gets more than this one.
      const ok = path.some((l) => Math.abs(use[l]! - caps[l]!) < 1e-6 * caps[l]! && flows.every((o) => !o.path.includes(l) || net.rateOf(o.f) <= r * (1 + 1e-9)));
      assert.ok(ok, `round ${round}: flow at ${r} has no bottleneck link`);
    }
    for (const { f } of flows) net.abort(f);
  }
});

test('weights: a link is shared in proportion to them, and a weighted flow held back elsewhere leaves the rest', async () => {
  const time = new VirtualTime();
  const net = new FlowNetwork(time, 0);
  const up = net.addLink(100);
  const down = net.addLink(10);
  const heavy = net.start([up], 1e9, () => undefined);
  const light = net.start([up], 1e9, () => undefined);
  net.setWeight(heavy, 1);
  net.setWeight(light, 0.25);
  await time.run({ until: 0 });
  close(net.rateOf(heavy), 80);
  close(net.rateOf(light), 20);
  // The heavy flow's child link carries only 10: the light one gets everything else (work-conserving).
  const held = net.start([up, down], 1e9, () => undefined);
  net.abort(heavy);
  await time.run({ until: 0 });
  close(net.rateOf(held), 10, 'weight 1 against 0.25 would give it 80 of up, but its own link caps it');
  close(net.rateOf(light), 90, 'the light flow takes the rest');
  // Back to 1: an even split again.
  net.abort(held);
  const other = net.start([up], 1e9, () => undefined);
  net.setWeight(light, 1);
  await time.run({ until: 0 });
  close(net.rateOf(light), 50);
  close(net.rateOf(other), 50);
});
