// Micro-benchmark of the agent's data plane, in one process on 127.0.0.1 (no shaping): the CPU of
// one bitfield request/response (what a long poll costs once it is answered) and of moving 4 MiB
// pieces (peer server: file read, socket; transport: socket, copy into a piece buffer). Both sides'
// CPU together. The bench's agents spend several times this per MiB at 20 Mbit/s (bench/p2p/README.md):
// this is the floor such work is compared against. Run: node --import tsx bench/p2p/micro.ts
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf } from '../../src/oci/digest.js';
import { PieceStore } from '../../src/p2p/peer/piece-store.js';
import { createPeerRoutes } from '../../src/p2p/peer/server-routes.js';
import { HttpPeerTransport } from '../../src/p2p/peer/http-transport.js';

const PIECE = 4 * 1024 * 1024;
const PIECES = 16;
const POLLS = 4000;
const ROUNDS = 8;

const root = await mkdtemp(join(tmpdir(), 'shoal-micro-'));
const blob = randomBytes(PIECES * PIECE);
const digest = digestOf(blob);
const store = await PieceStore.open(join(root, 'store'), { durable: false });
await store.writeCompleteBlob(digest, Readable.from([blob]), { pieceSize: PIECE });
const routes = createPeerRoutes({ store, clusterToken: 'micro' });
const server = createServer((req, res) => {
  if (!routes.handlePeerRequest(req, res)) res.writeHead(404).end();
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const parent = { id: 'parent', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, role: 'agent' as const, labels: {} };
const transport = new HttpPeerTransport({ clusterToken: 'micro' });
const signal = new AbortController().signal;

/** CPU microseconds (user + system) and wall ms that `fn` took. */
async function measure(fn: () => Promise<void>): Promise<{ cpuUs: number; wallMs: number }> {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { cpuUs: c.user + c.system, wallMs: performance.now() - w0 };
}

try {
  const polls = async (n: number) => {
    for (let i = 0; i < n; i++) await transport.bitfield(parent, digest);
  };
  const pieces = async (rounds: number) => {
    for (let r = 0; r < rounds; r++) for (let i = 0; i < PIECES; i++) transport.release(await transport.piece(parent, digest, i, signal, PIECE));
  };
  await polls(500); // warm-up: JIT, connections
  await pieces(1);
  const p = await measure(() => polls(POLLS));
  const m = await measure(() => pieces(ROUNDS));
  const mib = (ROUNDS * PIECES * PIECE) / 1048576;
  const pollUs = p.cpuUs / POLLS;
  const pieceMsPerMib = m.cpuUs / 1000 / mib;
  console.log(`bitfield request/response: ${pollUs.toFixed(0)} µs of CPU each (${POLLS} sequential)`);
  console.log(`4 MiB pieces: ${pieceMsPerMib.toFixed(2)} ms of CPU per MiB, ${(mib / (m.wallMs / 1000)).toFixed(0)} MiB/s (${ROUNDS * PIECES} pieces)`);
  console.log(JSON.stringify({ bitfield_cpu_us: Math.round(pollUs), piece_cpu_ms_per_mib: Number(pieceMsPerMib.toFixed(2)), piece_mib_per_s: Math.round(mib / (m.wallMs / 1000)) }));
} finally {
  await transport.close();
  routes.close();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(root, { recursive: true, force: true });
}
