// The hand-written announce/heartbeat parsers must accept exactly what the zod schemas accept,
// and produce the same values (unknown fields stripped); the reply JSON must equal JSON.stringify.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { announceParser, announceReplyJson, fastParse } from '../../../src/p2p/scheduler/codec.js';
import { announceSchema, heartbeatSchema } from '../../../src/p2p/scheduler/schemas.js';
import type { AnnounceResponse, PeerInfo } from '../../../src/p2p/protocol.js';

const hex = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const digestish = fc.oneof(
  { weight: 12, arbitrary: hex.map((h) => `sha256:${h}`) },
  hex.map((h) => `sha256:${h.toUpperCase()}`),
  hex.map((h) => `sha256:${h.slice(1)}`),
  fc.string({ maxLength: 80 }),
);
const labelish = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('dc1', 'zone-a', 'r12') }, fc.constantFrom('', 'with space', 'x'.repeat(129), 'ünï'), fc.string({ maxLength: 20 }));
// Mostly valid values, with wrong types, bounds and shapes mixed in.
const maybe = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 30, arbitrary: valid }, { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 5 }), fc.constant([]), fc.constant({})) });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });

const peer = fc.record(
  {
    id: maybe(fc.oneof({ weight: 12, arbitrary: fc.constantFrom('agent-1', 'seed-a') }, fc.constant(''), fc.string({ maxLength: 300 }))),
    url: maybe(fc.oneof({ weight: 12, arbitrary: fc.constantFrom('http://10.0.0.5:4001', 'https://seed.example:443/x', 'http://[::1]:9') }, fc.constantFrom('ftp://x', 'http://u:p@h:1', 'not a url'))),
    role: maybe(fc.oneof({ weight: 12, arbitrary: fc.constantFrom('agent', 'seed') }, fc.constant('admin'))),
    labels: opt(maybe(fc.record({ dc: opt(labelish), zone: opt(labelish), rack: opt(labelish), extra: opt(fc.string()) }, { requiredKeys: [] }))),
    uploadBps: opt(maybe(fc.oneof(fc.double({ min: -10, max: 2e13, noNaN: true }), fc.constant(125e6)))),
    junk: opt(fc.string()),
  },
  { requiredKeys: ['id', 'url', 'role'] },
);

const announce = fc.record(
  {
    peer: maybe(peer),
    task: maybe(fc.record({ digest: digestish, size: opt(maybe(fc.oneof({ weight: 8, arbitrary: fc.nat() }, fc.double({ min: -1, max: 1e3 })))), repo: opt(fc.oneof({ weight: 8, arbitrary: fc.constantFrom('team/app', 'x') }, fc.string({ maxLength: 300 }))) }, { requiredKeys: ['digest'] })),
    state: maybe(fc.oneof({ weight: 12, arbitrary: fc.constantFrom('started', 'downloading', 'done', 'failed', 'left') }, fc.constant('paused'))),
    completedPieces: maybe(fc.oneof({ weight: 12, arbitrary: fc.nat({ max: 1e9 }) }, fc.constantFrom(1.5, -1, 2e9))),
    badPeers: opt(maybe(fc.array(maybe(fc.record({ peerId: fc.string({ minLength: 1, maxLength: 300 }), reason: fc.constantFrom('corrupt-piece', 'unreachable', 'slow', 'refused', 'refused', 'unreachable', 'bored'), detail: opt(fc.string({ maxLength: 1100 })) }, { requiredKeys: ['peerId', 'reason'] })), { maxLength: 3 }))),
    releasedParents: opt(maybe(fc.oneof({ weight: 8, arbitrary: fc.array(fc.string({ minLength: 1, maxLength: 20 }), { maxLength: 4 }) }, fc.array(fc.string({ maxLength: 300 }), { maxLength: 70 })))),
    wantParents: maybe(fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 64 }) }, fc.constantFrom(-1, 65, 2.5))),
    extra: opt(fc.anything()),
  },
  { requiredKeys: ['peer', 'task', 'state', 'completedPieces', 'wantParents'] },
);

const heartbeat = fc.record(
  {
    peer: maybe(peer),
    completeTasks: opt(maybe(fc.array(digestish, { maxLength: 5 }))),
    uploading: opt(maybe(fc.oneof({ weight: 8, arbitrary: fc.nat({ max: 64 }) }, fc.constantFrom(-1, 1.5, 2e6)))),
  },
  { requiredKeys: ['peer'] },
);

describe('scheduler codec', () => {
  it('the announce parser agrees with the zod schema (accepts the same bodies, same values)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(announce, (body) => {
        const json = JSON.parse(JSON.stringify(body));
        const ref = announceSchema.safeParse(json);
        const fast = fastParse('announce', json);
        assert.equal(fast.ok, ref.success, `zod ${ref.success ? 'accepts' : `rejects (${ref.error?.issues[0]?.message})`} what the fast parser ${fast.ok ? 'accepts' : `rejects (${!fast.ok && fast.message})`}: ${JSON.stringify(json).slice(0, 400)}`);
        if (fast.ok && ref.success) {
          assert.deepEqual(fast.value, ref.data);
          accepted++;
        }
      }),
      { numRuns: 3000 },
    );
    // The generator must reach both sides, or the agreement says little.
    assert.ok(accepted > 300, `only ${accepted} bodies were valid`);
  });

  it('the heartbeat parser agrees with the zod schema', () => {
    fc.assert(
      fc.property(heartbeat, (body) => {
        const json = JSON.parse(JSON.stringify(body));
        const ref = heartbeatSchema.safeParse(json);
        const fast = fastParse('heartbeat', json);
        assert.equal(fast.ok, ref.success, JSON.stringify(json).slice(0, 400));
        if (fast.ok && ref.success) assert.deepEqual(fast.value, ref.data);
      }),
      { numRuns: 2000 },
    );
  });

  it('names the bad field in its message: the fast path the first, the parser every one', () => {
    const body = { peer: { id: 'a', url: 'ftp://x', role: 'agent' }, task: { digest: 'sha256:x' }, state: 'started', completedPieces: 0, wantParents: 1 };
    const fast = fastParse('announce', body);
    assert.match(!fast.ok ? fast.message : '', /^peer\.url: must be an http\(s\) URL/);
    const full = announceParser.parse(body);
    assert.equal(full.ok, false);
    assert.match(!full.ok ? full.message : '', /peer\.url: .*task\.digest: must be a digest/);
  });

  it('serialises a reply exactly as JSON.stringify does, also when the same peers come back', () => {
    const p = (i: number): PeerInfo => ({ id: `agent-${i}`, url: `http://10.0.0.${i}:65001`, role: 'agent', labels: { dc: 'dc1', rack: `r${i}` }, ...(i % 2 ? { uploadBps: 1e8 } : {}) });
    const parents = [p(1), p(2), p(3)];
    const pieces = { digest: `sha256:${'a'.repeat(64)}` as const, size: 10, pieceSize: 4, pieceDigests: [`sha256:${'b'.repeat(64)}` as const] };
    const replies: AnnounceResponse[] = [
      { parents, announceIntervalMs: 3000, backToSource: false },
      { parents: [parents[2]!, parents[0]!], pieces, announceIntervalMs: 4500, backToSource: false },
      { parents: [], announceIntervalMs: 3000, backToSource: true },
      // The core adds swapSpreadMs last, when over its announce budget.
      { parents: [parents[1]!], announceIntervalMs: 5000, backToSource: false, swapSpreadMs: 1000 },
    ];
    for (const r of replies) assert.equal(announceReplyJson(r), JSON.stringify(r));
  });
});
