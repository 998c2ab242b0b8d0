// The agent's fallback when the swarm fails after the piece manifest is known but before the
// first byte reached the client: the client must still get the whole blob from the registry,
// with proper headers. (Before the fix the agent had already set the response headers for the
// swarm, could not set them again for the registry, and reset the connection: the client saw an
// empty reply.) Real registry process and real agent on loopback; the scheduler is a small fake
// that hands out the piece manifest with a parent nobody listens at, then sends the agent back
// to the registry.
import { test } from 'node:test';
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

/** Announce 1: the manifest and one parent at a closed port; every later announce: back to source. */
async function fakeScheduler(manifest: PieceManifest): Promise<{ url: string; server: Server; announces: () => number }> {
  let announces = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      let body: unknown = {};
      if (req.url === '/scheduler/v1/announce') {
        const first = announces++ === 0;
        const reply: AnnounceResponse = first
          ? { parents: [{ id: 'ghost', url: 'http://127.0.0.1:9', role: 'seed', labels: {} }], pieces: manifest, announceIntervalMs: 200, backToSource: false }
          : { parents: [], announceIntervalMs: 200, backToSource: true };
        body = reply;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, server, announces: () => announces };
}

test('swarm fails before the first byte: the client still gets the whole blob from the registry, with headers', async (t) => {
  const registry = await startShoal();
  t.after(() => registry.stop());
  const data = randomBytes(5 * 1024 * 1024 + 17); // two pieces
  const digest = sha(data);
  await pushBlob(registry.url, 'p2p/fallback', { mediaType: 'application/octet-stream', digest, size: data.length, data });

  const scheduler = await fakeScheduler(manifestOf(data));
  t.after(() => new Promise<void>((r) => scheduler.server.close(() => r())));
  const dataDir = await mkdtemp(join(tmpdir(), 'shoal-agent-fallback-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const agent = await startAgent({
    listen: { host: '127.0.0.1', port: 0 },
    schedulerUrl: scheduler.url,
    registryUrl: registry.url,
    dataDir,
    labels: {},
    prefetchLayers: false,
    log: pino({ level: 'silent' }),
  });
  t.after(() => agent.close());

  const res = await request(`http://${agent.address}/v2/p2p/fallback/blobs/${digest}`, { headersTimeout: 20_000, bodyTimeout: 20_000 });
  const body = Buffer.from(await res.body.arrayBuffer());
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['docker-content-digest'], digest);
  assert.equal(Number(res.headers['content-length']), data.length);
  assert.equal(sha(body), digest, 'the whole blob, intact');
  assert.ok(scheduler.announces() >= 2, 'the swarm was tried (manifest handed out) before the registry served it');

  const status = (await (await request(`http://${agent.address}/status`)).body.json()) as { recentFallbacks: Array<{ digest: string; reason: string }> };
  assert.deepEqual(
    status.recentFallbacks.map((f) => [f.digest, f.reason]),
    [[digest, 'swarm-unavailable']],
  );
});
