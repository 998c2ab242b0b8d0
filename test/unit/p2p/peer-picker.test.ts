// PiecePicker: rarest first, random first pieces, per-parent limits, endgame, and a property:
// every missing piece some parent holds is eventually assigned.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitfield } from '../../../src/p2p/peer/bitfield.js';
import { ENDGAME_LAG, isLagging, PiecePicker, losersOf, STREAM_MIN_HOLDERS, type Assignment, type PickerParent } from '../../../src/p2p/peer/picker.js';

function bits(n: number, held: number[]): Bitfield {
  const b = new Bitfield(n);
  for (const i of held) b.set(i);
  return b;
}
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/** Deterministic rng (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random turn: up to maxParents parents over 1..70 pieces, up to maxHeld pieces held, up to
 * maxFlying of the missing ones in flight (each from some parent), and a budget of 1..12.
 */
function turnArbitrary(maxParents: number, maxHeld: number, maxFlying: number) {
  return fc
    .tuple(
      fc.integer({ min: 1, max: 70 }),
      fc.array(fc.array(fc.nat(69), { maxLength: 70 }), { minLength: 1, maxLength: maxParents }),
      fc.array(fc.nat(69), { maxLength: maxHeld }),
      fc.array(fc.nat(69), { maxLength: maxFlying }),
      fc.integer({ min: 1, max: 12 }),
      fc.nat(),
    )
    .map(([n, parentHeld, held, flying, budget, seed]) => {
      const clip = (xs: number[]) => xs.filter((i) => i < n);
      const have = bits(n, clip(held));
      const parents: PickerParent[] = parentHeld.map((h, k) => ({ id: `p${k}`, pieces: bits(n, clip(h)) }));
      const inFlight = new Map<number, Set<string>>();
      for (const i of clip(flying)) if (!have.has(i)) inFlight.set(i, new Set([`p${i % parents.length}`]));
      return { n, have, parents, seed, input: { numPieces: n, have, haveCount: have.count, parents, inFlight, maxAssignments: budget } };
    });
}

describe('PiecePicker', () => {
  it('picks the rarest pieces first (after the random-first phase)', () => {
    const n = 10;
    const have = bits(n, [0, 1, 2, 3]);
    // piece 7 is only at A; 8 only at B; everything else at all three.
    const parents: PickerParent[] = [
      { id: 'A', pieces: bits(n, [...range(4, 7), 7, 9]) },
      { id: 'B', pieces: bits(n, [...range(4, 7), 8, 9]) },
      { id: 'C', pieces: bits(n, [...range(4, 7), 9]) },
    ];
    for (let seed = 0; seed < 20; seed++) {
      const picks = new PiecePicker({ rng: rng(seed), randomFirst: 4 }).pick({ numPieces: n, have, haveCount: 4, parents, inFlight: new Map(), maxAssignments: 2 });
      assert.deepEqual(picks.map((p) => p.piece).sort(), [7, 8]);
      assert.deepEqual(Object.fromEntries(picks.map((p) => [p.piece, p.parentId])), { 7: 'A', 8: 'B' });
      assert.ok(picks.every((p) => !p.endgame));
    }
  });

  it('randomizes the first pieces and breaks ties at random', () => {
    const n = 64;
    const parents = [{ id: 'S', pieces: Bitfield.full(n), limit: 1 }];
    const firsts = new Set<number>();
    for (let seed = 0; seed < 30; seed++) {
      const [a] = new PiecePicker({ rng: rng(seed) }).pick({ numPieces: n, have: new Bitfield(n), haveCount: 0, parents, inFlight: new Map(), maxAssignments: 1 });
      firsts.add(a!.piece);
    }
    assert.ok(firsts.size > 10, `only ${firsts.size} distinct first pieces`);
  });

  it('respects per-parent limits (default and per parent), counting requests already in flight', () => {
    const n = 50;
    const parents: PickerParent[] = [
      { id: 'A', pieces: Bitfield.full(n) },
      { id: 'S', pieces: Bitfield.full(n), limit: 5 },
    ];
    const inFlight = new Map([[0, new Set(['A'])], [1, new Set(['S'])]]);
    const picks = new PiecePicker({ perParentLimit: 3, rng: rng(1) }).pick({ numPieces: n, have: new Bitfield(n), haveCount: 0, parents, inFlight, maxAssignments: 100 });
    const per = (id: string) => picks.filter((p) => p.parentId === id).length;
    assert.equal(per('A'), 2);
    assert.equal(per('S'), 4);
    assert.ok(picks.every((p) => p.piece !== 0 && p.piece !== 1), 'in-flight pieces are not re-requested outside endgame');
    assert.equal(new Set(picks.map((p) => p.piece)).size, picks.length);
  });

  it('among holders with as many free slots the nearest is asked; more free slots still come first', () => {
    const n = 8;
    const pick = (parents: PickerParent[], seed: number) =>
      new PiecePicker({ perParentLimit: 2, rng: rng(seed) }).pick({ numPieces: n, have: bits(n, range(1, n)), haveCount: n - 1, parents, inFlight: new Map(), maxAssignments: 1 });
    for (let seed = 1; seed <= 20; seed++) {
      // Piece 0 is the only one missing; three parents hold it with 2 free slots each.
      const even: PickerParent[] = [
        { id: 'other-dc', pieces: Bitfield.full(n), near: 0 },
        { id: 'same-rack', pieces: Bitfield.full(n), near: 3 },
        { id: 'same-zone', pieces: Bitfield.full(n), near: 2 },
      ];
      assert.deepEqual(pick(even, seed).map((a) => a.parentId), ['same-rack'], `seed ${seed}`);
      // The rack mate has one request out already: the zone mate, with two free, is asked.
      const busier = even.map((p) => (p.id === 'same-rack' ? { ...p, limit: 1 } : p));
      assert.deepEqual(pick(busier, seed).map((a) => a.parentId), ['same-zone'], `seed ${seed}`);
    }
    // Without nearness (or equal), ties stay random.
    const flat = (seed: number) => pick([{ id: 'a', pieces: Bitfield.full(n) }, { id: 'b', pieces: Bitfield.full(n) }], seed)[0]!.parentId;
    assert.deepEqual(new Set(range(1, 30).map(flat)), new Set(['a', 'b']));
  });

  it('parentNearness: shared locality levels, a seed last', async () => {
    const { parentNearness } = await import('../../../src/p2p/peer/parent-policy.js');
    const me = { dc: 'd1', zone: 'z1', rack: 'r1' };
    const info = (role: 'seed' | 'agent', labels: Record<string, string>) => ({ id: 'x', url: 'http://x', role, labels });
    assert.equal(parentNearness(me, info('agent', { dc: 'd1', zone: 'z1', rack: 'r1' })), 3);
    assert.equal(parentNearness(me, info('agent', { dc: 'd1', zone: 'z1', rack: 'r2' })), 2);
    assert.equal(parentNearness(me, info('agent', { dc: 'd1', zone: 'z2', rack: 'r1' })), 1, 'rack r1 of another zone is another rack');
    assert.equal(parentNearness(me, info('agent', { dc: 'd2' })), 0);
    assert.equal(parentNearness(me, info('seed', { dc: 'd1', zone: 'z1', rack: 'r1' })), 0, 'a seed in our own rack is still asked last among equals');
  });

  it('stays within the global budget and never picks held pieces or pieces a parent lacks', () => {
    const n = 20;
    const have = bits(n, range(0, 10));
    const parents = [{ id: 'A', pieces: bits(n, range(5, 15)) }];
    const picks = new PiecePicker({ perParentLimit: 10, rng: rng(2) }).pick({ numPieces: n, have, haveCount: 10, parents, inFlight: new Map(), maxAssignments: 3 });
    assert.equal(picks.length, 3);
    assert.ok(picks.every((p) => p.piece >= 10 && p.piece < 15));
  });

  it('endgame: when every missing piece is in flight, duplicates them on other parents; losers are the other requests', () => {
    const n = 8;
    const have = bits(n, range(0, 6));
    const parents: PickerParent[] = [
      { id: 'A', pieces: Bitfield.full(n) },
      { id: 'B', pieces: Bitfield.full(n) },
      { id: 'C', pieces: bits(n, [6]) },
    ];
    const inFlight = new Map([[6, new Set(['A'])], [7, new Set(['A'])]]);
    const picks = new PiecePicker({ rng: rng(3), endgameMaxRequests: 3 }).pick({ numPieces: n, have, haveCount: 6, parents, inFlight, maxAssignments: 10 });
    assert.ok(picks.length >= 3);
    assert.ok(picks.every((p) => p.endgame));
    assert.ok(picks.every((p) => p.parentId !== 'A'), 'never the parent already asked');
    assert.deepEqual(picks.filter((p) => p.piece === 7).map((p) => p.parentId), ['B']);
    assert.deepEqual(picks.filter((p) => p.piece === 6).map((p) => p.parentId).sort(), ['B', 'C']);
    assert.deepEqual(losersOf(6, 'C', new Map([[6, new Set(['A', 'B', 'C'])]])).sort(), ['A', 'B']);
  });

  it('endgame with more than the threshold missing copies only late pieces; at the threshold, any', () => {
    const n = 16;
    const parents: PickerParent[] = [
      { id: 'A', pieces: Bitfield.full(n), limit: 8 },
      { id: 'B', pieces: Bitfield.full(n), limit: 8 },
    ];
    // Six missing (10..15), all requested from A; only 12 and 14 are late.
    const inFlight = new Map(range(10, 16).map((i) => [i, new Set(['A'])] as [number, Set<string>]));
    const late = new Set([12, 14]);
    const pick = (have: Bitfield, flying: Map<number, Set<string>>) =>
      new PiecePicker({ rng: rng(9) }).pick({ numPieces: n, have, haveCount: have.count, parents, inFlight: flying, maxAssignments: 8, lagging: (i) => late.has(i) });
    const picks = pick(bits(n, range(0, 10)), inFlight);
    assert.deepEqual(picks.map((p) => `${p.piece}@${p.parentId}`).sort(), ['12@B', '14@B']);
    assert.ok(picks.every((p) => p.endgame));
    // Two missing (the threshold): both are copied, late or not.
    const tail = pick(bits(n, range(0, 14)), new Map([[14, new Set(['A'])], [15, new Set(['A'])]]));
    assert.deepEqual(tail.map((p) => `${p.piece}@${p.parentId}`).sort(), ['14@B', '15@B']);
  });

  it('isLagging: out for over ENDGAME_LAG piece times, and never before a piece time is known', () => {
    assert.equal(isLagging(undefined, 10_000, 1000), false);
    assert.equal(isLagging(0, 10_000, 0), false);
    assert.equal(isLagging(1000, 1000 + ENDGAME_LAG * 1000, 1000), false);
    assert.equal(isLagging(1000, 1001 + ENDGAME_LAG * 1000, 1000), true);
  });

  it('no endgame while un-requested pieces remain (beyond the small threshold)', () => {
    const n = 20;
    const parents = [
      { id: 'A', pieces: Bitfield.full(n), limit: 1 },
      { id: 'B', pieces: bits(n, [0]), limit: 5 },
    ];
    const inFlight = new Map([[0, new Set(['A'])]]);
    const picks = new PiecePicker({ rng: rng(4) }).pick({ numPieces: n, have: new Bitfield(n), haveCount: 0, parents, inFlight, maxAssignments: 10 });
    assert.deepEqual(picks, []);
  });

  it('sequential preference serves a waiting reader first', () => {
    const n = 30;
    const parents = [{ id: 'A', pieces: Bitfield.full(n), limit: 10 }];
    const picks = new PiecePicker({ rng: rng(5), sequentialWindow: 3 }).pick({ numPieces: n, have: bits(n, [10]), haveCount: 1, parents, inFlight: new Map(), maxAssignments: 3, sequentialFrom: 10 });
    assert.deepEqual(picks.map((p) => p.piece).slice(0, 2), [11, 12]);
    assert.equal(picks.length, 3);
  });

  it('the streaming window skips pieces fewer than STREAM_MIN_HOLDERS parents hold (rarest-first spreads them)', () => {
    const n = 64;
    assert.equal(STREAM_MIN_HOLDERS, 3);
    // The seed holds everything, one peer 20..63 and another 30..63: pieces 0-19 have one holder,
    // 20-29 two, 30-63 three.
    const parents = [
      { id: 'seed', pieces: Bitfield.full(n), limit: 1 },
      { id: 'peer', pieces: bits(n, range(20, n)), limit: 10 },
      { id: 'peer2', pieces: bits(n, range(30, n)), limit: 10 },
    ];
    const input = { numPieces: n, have: bits(n, range(40, 48)), haveCount: 8, parents, inFlight: new Map(), maxAssignments: 1 };
    // Reader at 0 (or at 20, two holders): those pieces do not jump the line; across draws, the
    // pick is a rarest piece (one holder, 0..19) at random, not the reader's every time.
    const firstPicks = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      for (const from of [0, 20]) {
        const [a] = new PiecePicker({ rng: rng(seed) }).pick({ ...input, sequentialFrom: from });
        assert.ok(a && a.piece < 20, `pick ${a?.piece}`);
        firstPicks.add(a!.piece);
      }
    }
    assert.ok(firstPicks.size > 5, `picks: ${[...firstPicks]}`);
    // Reader at 30: pieces 30-33 have three holders, so they go first, in order.
    const picks = new PiecePicker({ rng: rng(9) }).pick({ ...input, maxAssignments: 3, sequentialFrom: 30 });
    assert.deepEqual(
      picks.map((p) => p.piece),
      [30, 31, 32],
    );
  });

  it('with a single parent the streaming window streams in order whatever the holders', () => {
    const n = 16;
    const parents = [{ id: 'seed', pieces: Bitfield.full(n), limit: 4 }];
    const picks = new PiecePicker({ rng: rng(3) }).pick({ numPieces: n, have: new Bitfield(n), haveCount: 0, parents, inFlight: new Map(), maxAssignments: 4, sequentialFrom: 0 });
    assert.deepEqual(
      picks.map((p) => p.piece),
      [0, 1, 2, 3],
    );
  });

  it('property: every missing piece held by some parent is eventually assigned, within all limits', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }),
        (n, parentCount, budget, seed, density) => {
          const r = rng(seed);
          const have = new Bitfield(n);
          for (let i = 0; i < n; i++) if (r() < density[0]! * 0.5) have.set(i);
          const parents: PickerParent[] = [];
          for (let k = 0; k < parentCount; k++) {
            const b = new Bitfield(n);
            for (let i = 0; i < n; i++) if (r() < density[k + 1]!) b.set(i);
            parents.push({ id: `p${k}`, pieces: b, limit: 1 + Math.floor(r() * 4) });
          }
          const obtainable = range(0, n).filter((i) => !have.has(i) && parents.some((p) => p.pieces.has(i)));
          const picker = new PiecePicker({ rng: r, perParentLimit: 3 });
          const inFlight = new Map<number, Set<string>>();
          for (let round = 0; round < 4 * n + 10; round++) {
            const picks: Assignment[] = picker.pick({ numPieces: n, have, haveCount: have.count, parents, inFlight, maxAssignments: budget });
            assert.ok(picks.length <= budget);
            const seen = new Set<string>();
            for (const a of picks) {
              const p = parents.find((x) => x.id === a.parentId)!;
              assert.ok(p.pieces.has(a.piece), 'parent holds the piece');
              assert.ok(!have.has(a.piece), 'not already held');
              const key = `${a.piece}/${a.parentId}`;
              assert.ok(!seen.has(key) && !inFlight.get(a.piece)?.has(a.parentId), 'no duplicate request to one parent');
              seen.add(key);
              if (!a.endgame) assert.ok(!inFlight.has(a.piece) && picks.filter((x) => x.piece === a.piece && !x.endgame).length === 1);
              let s = inFlight.get(a.piece);
              if (!s) inFlight.set(a.piece, (s = new Set()));
              s.add(a.parentId);
            }
            for (const p of parents) {
              let count = 0;
              for (const ids of inFlight.values()) if (ids.has(p.id)) count++;
              assert.ok(count <= (p.limit ?? 3), `parent ${p.id} has ${count} > ${p.limit} requests`);
            }
            // Complete a random half of the outstanding requests (at least one); cancel endgame losers.
            const pending = [...inFlight.keys()];
            if (pending.length === 0) break;
            for (const piece of pending) {
              if (r() < 0.5 && pending.length > 1) continue;
              have.set(piece);
              inFlight.delete(piece);
            }
          }
          for (const i of obtainable) assert.ok(have.has(i), `piece ${i} was never assigned`);
          for (let i = 0; i < n; i++) if (!obtainable.includes(i) && !have.has(i)) assert.ok(!parents.some((p) => p.pieces.has(i)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the byte-wise availability count picks exactly what the per-piece count picks', () => {
    const asSet = (b: Bitfield) => ({ has: (i: number) => b.has(i) });
    fc.assert(
      fc.property(
        turnArbitrary(16, 40, 6),
        ({ input, parents, have, seed }) => {
          const fast = new PiecePicker({ rng: rng(seed) }).pick(input);
          const slow = new PiecePicker({ rng: rng(seed) }).pick({ ...input, have: asSet(have), parents: parents.map((p) => ({ ...p, pieces: asSet(p.pieces as Bitfield) })) });
          assert.deepEqual(fast, slow);
        },
      ),
      { numRuns: 500 },
    );
  });
  it('pickers share their scratch, and a pick nested in a callback of another leaves it unchanged', () => {
    const n = 16;
    const parents: PickerParent[] = [
      { id: 'A', pieces: Bitfield.full(n), limit: 8 },
      { id: 'B', pieces: bits(n, range(8, 16)), limit: 8 },
      { id: 'C', pieces: bits(n, [12, 13, 14, 15]), limit: 2 },
    ];
    const inFlight = new Map(range(10, 16).map((i) => [i, new Set(['A'])] as [number, Set<string>]));
    const have = bits(n, range(0, 10));
    const other = new PiecePicker({ rng: rng(3) });
    // The nested turn writes every scratch array, with other sizes and other parents.
    const nested = () => other.pick({ numPieces: 40, have: new Bitfield(40), haveCount: 0, parents: [{ id: 'X', pieces: Bitfield.full(40), limit: 9 }, { id: 'Y', pieces: Bitfield.full(40) }], inFlight: new Map(), maxAssignments: 12 });
    const turn = (lagging: (i: number) => boolean) => new PiecePicker({ rng: rng(5) }).pick({ numPieces: n, have, haveCount: have.count, parents, inFlight, maxAssignments: 8, lagging });
    const alone = turn(() => true);
    const withNested = turn(() => nested().length > 0);
    assert.ok(alone.length >= 4, `endgame copies: ${JSON.stringify(alone)}`);
    assert.deepEqual(withNested, alone);
  });

  it('parents read from one byte arena (PickInput.bitsArena) pick exactly what their Bitfields pick', () => {
    fc.assert(
      fc.property(
        turnArbitrary(18, 60, 8),
        ({ n, input, parents, seed }) => {
          // The parents' bytes in reverse order, after a few bytes of something else, and 0xff between them.
          const width = Math.ceil(n / 8);
          const arena = new Uint8Array(3 + parents.length * (width + 1)).fill(0xff);
          const placed = parents.map((p, k) => {
            const at = 3 + (parents.length - 1 - k) * (width + 1);
            arena.set((p.pieces as Bitfield).rawBytes(), at);
            return { ...p, bitsAt: at };
          });
          const fromArena = new PiecePicker({ rng: rng(seed) }).pick({ ...input, parents: placed, bitsArena: arena });
          assert.deepEqual(fromArena, new PiecePicker({ rng: rng(seed) }).pick(input));
          // A parent without bitsAt: the picker copies the bitfields instead, and still agrees.
          const partly = placed.map((p, k) => (k === placed.length - 1 ? { id: p.id, pieces: p.pieces } : p));
          assert.deepEqual(new PiecePicker({ rng: rng(seed) }).pick({ ...input, parents: partly, bitsArena: arena }), fromArena);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a picker reused across turns (its scratch kept) picks what a fresh one picks', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            n: fc.integer({ min: 1, max: 70 }),
            parentHeld: fc.array(fc.array(fc.nat(69), { maxLength: 70 }), { minLength: 1, maxLength: 18 }),
            held: fc.array(fc.nat(69), { maxLength: 60 }),
            budget: fc.integer({ min: 1, max: 12 }),
            sequentialFrom: fc.option(fc.nat(69), { nil: undefined }),
          }),
          { minLength: 2, maxLength: 6 },
        ),
        fc.nat(),
        (turns, seed) => {
          // Each turn draws from its own stream, so a fresh picker can replay any one turn.
          let stream = rng(seed);
          const reused = new PiecePicker({ rng: () => stream() });
          turns.forEach((t, turn) => {
            const clip = (xs: number[]) => xs.filter((i) => i < t.n);
            const have = bits(t.n, clip(t.held));
            const parents: PickerParent[] = t.parentHeld.map((h, k) => ({ id: `p${k}`, pieces: bits(t.n, clip(h)) }));
            const input = { numPieces: t.n, have, haveCount: have.count, parents, inFlight: new Map(), maxAssignments: t.budget, ...(t.sequentialFrom !== undefined ? { sequentialFrom: t.sequentialFrom } : {}) };
            stream = rng(seed + turn);
            const got = reused.pick(input);
            assert.deepEqual(got, new PiecePicker({ rng: rng(seed + turn) }).pick(input));
            for (const x of got) {
              assert.ok(!have.has(x.piece), 'never a held piece');
              assert.ok(parents.find((p) => p.id === x.parentId)!.pieces.has(x.piece), 'only from a parent that holds it');
            }
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
