// The agent's fallback when the swarm fails after the piece manifest is known but before the
// first byte reached the client: the client must still get the whole blob from the registry,
// with proper headers. (Before the fix the agent had already set the response headers for the
// swarm, could not set them again for the registry, and reset the connection: the client saw an
// empty reply.) Real registry process and real agent on loopback; the scheduler is a small fake
// that hands out the piece manifest with a parent nobody listens at, then sends the agent back
// to the registry.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { startAgent } from '../../src/p2p/agent/agent.js';
import { pieceCount, pieceSizeFor, type AnnounceResponse, type PieceManifest } from '../../src/p2p/protocol.js';
import { startShoal } from '../support/server.js';
import { pushBlob } from '../support/image.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as PieceManifest['digest'];

function manifestOf(data: Buffer): PieceManifest {
  const pieceSize = pieceSizeFor(data.length);
  const pieceDigests = Array.from({ length: pieceCount(data.length, pieceSize) }, (_, i) => sha(data.subarray(i * pieceSize, (i + 1) * pieceSize)));
  return { digest: sha(data), size: data.length, pieceSize, pieceDigests };
}

/** A scheduler that answers announce number n (from 0) with reply(n); every other call with {}. */
async function fakeScheduler(reply: (n: number) => AnnounceResponse): Promise<{ url: string; server: Server; announces: () => number }> {
  let announces = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = req.url === '/scheduler/v1/announce' ? reply(announces++) : {};
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  return { url: await listenLocal(server), server, announces: () => announces };
}

/** A parent that holds only piece 0: serves its bitfield and that piece; a long-poll for more never answers. */
async function onePieceParent(digest: string, data: Buffer, pieceSize: number, total: number): Promise<{ url: string; server: Server }> {
  const bits = Buffer.alloc(Math.ceil(total / 8));
  bits[0] = 0x80;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === `/p2p/v1/tasks/${digest}/bitfield`) {
      if (Number(url.searchParams.get('since') ?? -1) >= 1) return; // nothing new, ever: the child's long-poll waits
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ bitfield: bits.toString('base64'), count: 1, total }));
    }
    if (url.pathname === `/p2p/v1/tasks/${digest}/pieces/0`) {
      const piece = data.subarray(0, pieceSize);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': piece.length });
      return res.end(piece);
    }
    res.writeHead(404).end();
  });
  return { url: await listenLocal(server), server };
}

async function listenLocal(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}

/** A real registry holding a random blob of `size` bytes, and an agent in front of it using `schedulerUrl`. */
async function registryAndAgent(t: TestContext, size: number, scheduler: (data: Buffer) => Promise<string>): Promise<{ data: Buffer; digest: PieceManifest['digest']; agentUrl: string }> {
  const registry = await startShoal();
  t.after(() => registry.stop());
  const data = randomBytes(size);
  const digest = sha(data);
  await pushBlob(registry.url, 'p2p/fallback', { mediaType: 'application/octet-stream', digest, size: data.length, data });
  const schedulerUrl = await scheduler(data);
  const dataDir = await mkdtemp(join(tmpdir(), 'shoal-agent-fallback-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const agent = await startAgent({ listen: { host: '127.0.0.1', port: 0 }, schedulerUrl, registryUrl: registry.url, dataDir, labels: {}, prefetchLayers: false, log: pino({ level: 'silent' }) });
  t.after(() => agent.close());
  return { data, digest, agentUrl: `http://${agent.address}` };
}

/** GETs the blob through the agent and checks it came whole, with the registry's headers; returns the agent's recorded fallbacks. */
async function getWholeBlob(agentUrl: string, data: Buffer, digest: string, onHeaders?: () => void): Promise<Array<[string, string]>> {
  const res = await request(`${agentUrl}/v2/p2p/fallback/blobs/${digest}`, { headersTimeout: 20_000, bodyTimeout: 20_000 });
  onHeaders?.();
  const body = Buffer.from(await res.body.arrayBuffer());
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['docker-content-digest'], digest);
  assert.equal(Number(res.headers['content-length']), data.length);
  assert.equal(sha(body), digest, 'the whole blob, intact');
  const status = (await (await request(`${agentUrl}/status`)).body.json()) as { recentFallbacks: Array<{ digest: string; reason: string }> };
  return status.recentFallbacks.map((f) => [f.digest, f.reason]);
}

test('swarm fails before the first byte: the client still gets the whole blob from the registry, with headers', async (t) => {
  let announces = () => 0;
  const { data, digest, agentUrl } = await registryAndAgent(t, 5 * 1024 * 1024 + 17, async (blob) => {
    // The manifest and one parent at a closed port; then back to the registry.
    const s = await fakeScheduler((n) =>
      n === 0
        ? { parents: [{ id: 'ghost', url: 'http://127.0.0.1:9', role: 'seed', labels: {} }], pieces: manifestOf(blob), announceIntervalMs: 200, backToSource: false }
        : { parents: [], announceIntervalMs: 200, backToSource: true },
    );
    t.after(() => closeServer(s.server));
    announces = s.announces;
    return s.url;
  });
  assert.deepEqual(await getWholeBlob(agentUrl, data, digest), [[digest, 'swarm-unavailable']]);
  assert.ok(announces() >= 2, 'the swarm was tried (manifest handed out) before the registry served it');
});

test('swarm fails midway, while the client waits for the next piece: the registry serves the rest', async (t) => {
  let clientHasBytes = false;
  const { data, digest, agentUrl } = await registryAndAgent(t, 9 * 1024 * 1024 + 5, async (blob) => {
    const m = manifestOf(blob);
    const parent = await onePieceParent(m.digest, blob, m.pieceSize, m.pieceDigests.length);
    t.after(() => closeServer(parent.server));
    // The manifest and the one-piece parent; once the client has its first bytes (the agent sends
    // the headers with them), back to the registry.
    const s = await fakeScheduler((n) =>
      n === 0
        ? { parents: [{ id: 'one-piece', url: parent.url, role: 'agent', labels: {} }], pieces: m, announceIntervalMs: 200, backToSource: false }
        : { parents: [], announceIntervalMs: 200, backToSource: clientHasBytes },
    );
    t.after(() => closeServer(s.server));
    return s.url;
  });
  assert.deepEqual(await getWholeBlob(agentUrl, data, digest, () => (clientHasBytes = true)), [[digest, 'swarm-failed-midway']]);
});
