// The simulated clients (src/sim/readers.ts): each asks for its blobs layerConcurrency at a time
// and reads them in order; where it stops, the engines' downloads get setSequentialFrom, as the
// agent's PieceTask 'waiting' event does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario } from '../../../src/sim/scenario.js';
import { runVariant } from '../../../src/sim/run.js';
import { ClientReaders } from '../../../src/sim/readers.js';
import { Holding, type Layer, type SimHost } from '../../../src/sim/world.js';

function layer(index: number, numPieces: number): Layer {
  return { index, numPieces, pieceSize: 1, size: numPieces, digest: `sha256:${String(index).padStart(64, '0')}` } as Layer;
}

test('a client asks for layerConcurrency blobs, reads each in order, and asks for the next when one is done', () => {
  const layers = [layer(0, 4), layer(1, 4), layer(2, 4)];
  const host = { holdings: [] as Array<Holding | undefined>, firstByteAt: -1 } as unknown as SimHost;
  const holding = (h: SimHost, l: Layer) => (h.holdings[l.index] ??= new Holding(l));
  let now = 0;
  const readers = new ClientReaders(layers, 2, holding, () => now);
  const waits: Array<[number, number]> = [];
  for (const l of layers) holding(host, l).onReaderWait = (i) => waits.push([l.index, i]);
  readers.start(host);
  // Layers 0 and 1 asked for, each reader stopped at piece 0; layer 2 not yet.
  assert.deepEqual(waits, [[0, 0], [1, 0]]);
  assert.equal(host.holdings[2]!.readAt, -1);
  const land = (l: number, i: number) => {
    const x = host.holdings[l]!;
    x.bf.set(i);
    if (x.readAt === i) readers.advance(host, x);
  };
  // Piece 2 lands first: the reader still waits on 0. Then 0 and 1: it reads through 2 and stops at 3.
  now = 5;
  land(0, 2);
  assert.equal(host.firstByteAt, -1);
  now = 7;
  land(0, 0);
  assert.equal(host.firstByteAt, 7, 'first byte when the first piece was read');
  land(0, 1);
  assert.deepEqual(waits.slice(2), [[0, 1], [0, 3]]);
  // Layer 2 finished before the client asked for it: when layer 0 ends the client reads 2 through
  // at once and has nothing more to ask for.
  readers.layerDone(host, layers[2]!);
  land(0, 3);
  readers.layerDone(host, layers[0]!);
  assert.equal(host.holdings[0]!.readAt, -1);
  assert.equal(host.holdings[2]!.readAt, -1, 'a finished blob is read through, no wait');
  assert.equal(waits.filter(([l]) => l === 2).length, 0);
});

const ONE = `
name: one-reader
seed: 3
nodes: 1
image:
  layers: [64MiB]
  pieceSize: 1MiB
nic: 1Gbit
seeds: {perDc: 1, nic: 10Gbit}
registry: {egress: 10Gbit}
readers: true
variants:
  - {name: downloader, mode: p2p-preheat, engine: downloader}
  - {name: thin, mode: p2p-preheat, engine: thin}
`;

test('engines follow the reader: a lone agent streams its blob in order from the seed', async () => {
  const s = parseScenario(ONE);
  for (const v of s.variants) {
    const r = await runVariant(s, v);
    assert.equal(r.completed, 1, v.name);
    assert.equal(r.readers, true);
    // 64 pieces, 8 in flight: in order, piece 0 is in the first batch (an eighth of the pull);
    // in the picker's random order it would land anywhere.
    assert.ok(r.first_byte_p50_s! > 0 && r.first_byte_p50_s! < 0.2 * r.p50_s, `${v.name}: first byte ${r.first_byte_p50_s} s of ${r.p50_s} s`);
  }
  const none = parseScenario(ONE.replace('readers: true', 'readers: false'));
  const r = await runVariant(none, none.variants[0]!);
  assert.equal(r.readers, false);
  assert.equal(r.first_byte_p50_s, undefined);
  assert.throws(() => parseScenario(ONE.replace('readers: true', 'readers: 3')), /readers must be true or false/);
  assert.throws(() => parseScenario(ONE.replace('engine: thin}', 'engine: thin, readers: yes}')), /variants\[1\]\.readers must be true or false|readers must be true or false/);
});
