// The data plane over real HTTP on 127.0.0.1: server-routes.ts on two in-process servers (a seed
// and an agent), http-transport.ts as the client, and a stub scheduler for HttpSchedulerClient.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { PATHS, type AnnounceRequest, type AnnounceResponse, type PeerInfo, type PieceManifest } from '../../../src/p2p/protocol.js';
import { PieceStore } from '../../../src/p2p/peer/piece-store.js';
import { createPeerRoutes, type PeerRoutes } from '../../../src/p2p/peer/server-routes.js';
import { HttpPeerTransport, HttpSchedulerClient } from '../../../src/p2p/peer/http-transport.js';
import { TaskDownloader } from '../../../src/p2p/peer/downloader.js';
import { RateLimiter } from '../../../src/p2p/peer/rate-limiter.js';
import { uploadsPerChildFor } from '../../../src/p2p/peer/upload-slots.js';
import { Bitfield } from '../../../src/p2p/peer/bitfield.js';
import { isTransportError } from '../../../src/p2p/peer/errors.js';

const TOKEN = 'cluster-secret';
const PS = 32 * 1024;

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function peerServer(routes: PeerRoutes) {
  return listen((req, res) => {
    if (routes.handlePeerRequest(req, res)) return;
    res.writeHead(418).end();
  });
}

describe('peer data plane over HTTP', () => {
  let root: string;
  let blob: Buffer;
  let digest: Digest;
  let manifest: PieceManifest;
  let seedStore: PieceStore;
  let agentStore: PieceStore;
  let seedRoutes: PeerRoutes;
  let agentRoutes: PeerRoutes;
  const servers: Server[] = [];
  let seed: PeerInfo;
  let agent: PeerInfo;
  let schedulerUrl: string;
  const announces: AnnounceRequest[] = [];
  const transport = new HttpPeerTransport({ clusterToken: TOKEN });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-http-'));
    blob = randomBytes(PS * 20 + 7);
    digest = digestOf(blob);
    seedStore = await PieceStore.open(join(root, 'seed'), { durable: false });
    manifest = await seedStore.writeCompleteBlob(digest, Readable.from([blob]), { pieceSize: PS });
    agentStore = await PieceStore.open(join(root, 'agent'), { durable: false });
    seedRoutes = createPeerRoutes({ store: seedStore, clusterToken: TOKEN, uploadLimiter: new RateLimiter({ rate: 64 * 1024 * 1024 }) });
    agentRoutes = createPeerRoutes({ store: agentStore, clusterToken: TOKEN });
    const s = await peerServer(seedRoutes);
    const a = await peerServer(agentRoutes);
    servers.push(s.server, a.server);
    seed = { id: 'seed-1', url: s.url, role: 'seed', labels: {} };
    agent = { id: 'agent-1', url: a.url, role: 'agent', labels: {} };
    // Stub scheduler: the agent gets the seed, anyone else gets the agent.
    const sched = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url !== PATHS.announce || req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
        const body = JSON.parse(Buffer.concat(chunks).toString()) as AnnounceRequest;
        announces.push(body);
        const out: AnnounceResponse = { parents: [body.peer.id === agent.id ? seed : agent], pieces: manifest, announceIntervalMs: 100, backToSource: false };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
      });
    });
    servers.push(sched.server);
    schedulerUrl = sched.url;
  });

  after(async () => {
    seedRoutes.close();
    agentRoutes.close();
    await transport.close();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await Promise.all([seedStore.close(), agentStore.close()]);
    await rm(root, { recursive: true, force: true });
  });

  it('only claims /p2p/v1 paths; refuses a missing token; 404 JSON for pieces not held', async () => {
    const other = await request(`${seed.url}/v2/`);
    assert.equal(other.statusCode, 418);
    await other.body.dump();
    const noToken = await request(seed.url + PATHS.bitfield(digest));
    assert.equal(noToken.statusCode, 401);
    await noToken.body.dump();
    const wrong = new HttpPeerTransport({ clusterToken: 'wrong' });
    await assert.rejects(wrong.bitfield(seed, digest), (e) => isTransportError(e, 'refused'));
    await wrong.close();
    await assert.rejects(transport.piece(agent, digest, 0, new AbortController().signal), (e) => isTransportError(e, 'not-found'));
    const nf = await request(agent.url + PATHS.piece(digest, 0), { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(nf.statusCode, 404);
    assert.match(String(nf.headers['content-type']), /json/);
    assert.ok(((await nf.body.json()) as { errors: unknown[] }).errors.length === 1);
    const full = await transport.bitfield(seed, digest);
    assert.equal(full.count, manifest.pieceDigests.length);
    assert.ok(Bitfield.fromBase64(full.bitfield, full.total).isComplete());
    assert.deepEqual(await transport.piece(seed, digest, 20, new AbortController().signal, 7), blob.subarray(20 * PS));
    await assert.rejects(transport.piece(seed, digest, 3, new AbortController().signal, 5), (e) => isTransportError(e, 'protocol'));
  });

  it('downloads seed → agent → second agent over HTTP, the second following the first by long-poll', async () => {
    const scheduler = new HttpSchedulerClient({ url: schedulerUrl, clusterToken: TOKEN });
    const bStore = await PieceStore.open(join(root, 'b'), { durable: false });
    try {
      const a = new TaskDownloader({ self: agent, digest, scheduler, transport, store: agentStore, bitfieldWaitMs: 2000 });
      const b = new TaskDownloader({ self: { ...agent, id: 'agent-2', url: 'http://127.0.0.1:9' }, digest, scheduler, transport, store: bStore, bitfieldWaitMs: 2000 });
      const [ra, rb] = await Promise.all([a.run(), b.run()]);
      assert.equal(ra.outcome, 'done');
      assert.equal(rb.outcome, 'done');
      if (ra.outcome !== 'done' || rb.outcome !== 'done') return;
      assert.equal(digestOf(await readFile(ra.path)), digest);
      assert.equal(digestOf(await readFile(rb.path)), digest);
      assert.equal(ra.stats.bytesFromSeed, blob.length);
      assert.equal(rb.stats.bytesFromPeers, blob.length);
      assert.ok(seedRoutes.stats.bytesServed >= blob.length);
      assert.ok(agentRoutes.stats.bytesServed >= blob.length);
      assert.ok(announces.some((r) => r.state === 'done' && r.peer.id === 'agent-2'));
    } finally {
      await scheduler.close();
      await bStore.close();
    }
  });

  it('bitfield long-poll answers when a piece lands, and close() releases waiting polls (twenty at once, without a leak warning)', async () => {
    const store = await PieceStore.open(join(root, 'lp'), { durable: false });
    const routes = createPeerRoutes({ store, maxWaitMs: 5000 });
    const { server, url } = await peerServer(routes);
    const t = new HttpPeerTransport();
    // Twenty children wait at once (an agent's usual number): no "possible leak" warning. One
    // transport each: a transport's pool would queue some of them behind the others.
    const children = Array.from({ length: 20 }, () => new HttpPeerTransport());
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    try {
      const p: PeerInfo = { id: 'lp', url, role: 'agent', labels: {} };
      const task = await store.openTask(manifest);
      const t0 = performance.now();
      const polled = t.bitfield(p, digest, 0, 5000);
      setTimeout(() => void task.writePiece(3, blob.subarray(3 * PS, 4 * PS)), 50);
      const res = await polled;
      assert.equal(res.count, 1);
      assert.ok(Bitfield.fromBase64(res.bitfield, res.total).has(3));
      assert.ok(performance.now() - t0 < 2000);
      process.on('warning', onWarning);
      const waiting = children.map((c) => c.bitfield(p, digest, 1, 5000));
      await new Promise((r) => setTimeout(r, 100));
      const t1 = performance.now();
      routes.close();
      assert.deepEqual((await Promise.all(waiting)).map((r) => r.count), Array(20).fill(1));
      assert.ok(performance.now() - t1 < 1000);
      // Node emits the warning on the next tick: let it arrive before looking.
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings.filter((n) => n === 'MaxListenersExceededWarning'), []);
    } finally {
      process.off('warning', onWarning);
      await Promise.all(children.map((c) => c.close()));
      await t.close();
      await new Promise((r) => server.close(r));
      await store.close();
    }
  });
  it('with several downloads running, their long polls on one parent do not hold up its pieces', async () => {
    // A parent holding piece 3; four downloads poll it for more (an image's layers pulled at once
    // from a rack-mate that parents every layer), with 2 connections per parent for one download.
    const store = await PieceStore.open(join(root, 'polls'), { durable: false });
    const routes = createPeerRoutes({ store, maxWaitMs: 3000 });
    const { server, url } = await peerServer(routes);
    const t = new HttpPeerTransport({ connectionsPerOrigin: 2 });
    try {
      const p: PeerInfo = { id: 'polls', url, role: 'agent', labels: {} };
      const task = await store.openTask(manifest);
      await task.writePiece(3, blob.subarray(3 * PS, 4 * PS));
      t.setDownloads(4);
      const polls = Array.from({ length: 4 }, () => t.bitfield(p, digest, 1, 3000));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      const piece = await t.piece(p, digest, 3, AbortSignal.timeout(10_000), PS);
      const took = performance.now() - t0;
      assert.ok(piece.equals(blob.subarray(3 * PS, 4 * PS)));
      assert.ok(took < 1500, `the piece took ${Math.round(took)} ms behind the polls`);
      routes.close();
      assert.deepEqual((await Promise.all(polls)).map((r) => r.count), [1, 1, 1, 1]);
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
      await store.close();
    }
  });
  it('a seed shares its upload slots among blobs: one blob cannot hold them all while another is asked for', async () => {
    const other = randomBytes(PS * 4);
    const otherDigest = digestOf(other);
    await seedStore.writeCompleteBlob(otherDigest, Readable.from([other]), { pieceSize: PS });
    // Four slots, no line, 64 KiB/s for all uploads together (a piece takes over a second) so the
    // requests overlap: one piece of the other blob, then three of this one.
    const run = async (taskShareWindowMs: number) => {
      const routes = createPeerRoutes({ store: seedStore, clusterToken: TOKEN, maxConcurrentUploads: 4, uploadQueue: 0, taskShareWindowMs, uploadLimiter: new RateLimiter({ rate: 64 * 1024, burst: 4096 }) });
      const { server, url } = await peerServer(routes);
      const t = new HttpPeerTransport({ clusterToken: TOKEN });
      try {
        const p: PeerInfo = { id: 'shares', url, role: 'seed', labels: {} };
        const ask = (d: Digest, i: number) => t.piece(p, d, i, AbortSignal.timeout(10_000), PS).then(() => 'ok', (err: unknown) => (isTransportError(err, 'busy') ? 'busy' : String(err)));
        const asked: Array<Promise<string>> = [];
        let uploadsAtLast = 0;
        for (const [d, i] of [[otherDigest, 0], [digest, 0], [digest, 1], [digest, 2]] as const) {
          uploadsAtLast = routes.stats.activeUploads;
          asked.push(ask(d, i));
          await new Promise((r) => setTimeout(r, 60));
        }
        return { answers: await Promise.all(asked), uploadsAtLast };
      } finally {
        await t.close();
        await new Promise((r) => server.close(r));
      }
    };
    const shared = await run(5000);
    assert.deepEqual(shared.answers, ['ok', 'ok', 'ok', 'busy'], 'two blobs asked for: this one may hold 2 of the 4 slots');
    assert.equal(shared.uploadsAtLast, 3, 'a slot was free when the third piece of the same blob was refused');
    const firstCome = await run(0);
    assert.deepEqual(firstCome.answers, ['ok', 'ok', 'ok', 'ok'], 'without shares the free slot is taken');
  });
  it('a super-seeding seed shows only its least-served pieces, wakes a long poll on its view when that changes, and still feeds a lone child the whole blob', async () => {
    const routes = createPeerRoutes({ store: seedStore, superSeedHoldMs: 5000, maxWaitMs: 5000 });
    const { server, url } = await peerServer(routes);
    const t = new HttpPeerTransport({ peerId: 'child-1' });
    const other = new HttpPeerTransport({ peerId: 'child-2' });
    const bStore = await PieceStore.open(join(root, 'super'), { durable: false });
    const shown = (r: { bitfield: string; total: number }) => Bitfield.fromBase64(r.bitfield, r.total);
    try {
      const p: PeerInfo = { id: 'super-seed', url, role: 'seed', labels: {} };
      const first = await t.bitfield(p, digest);
      assert.equal(first.view, 0);
      assert.equal(first.count, manifest.pieceDigests.length);
      await t.piece(p, digest, 2, AbortSignal.timeout(10_000), PS);
      const after = await t.bitfield(p, digest);
      assert.equal(after.view, 1);
      assert.equal(after.count, manifest.pieceDigests.length - 1);
      assert.equal(shown(after).has(2), false);
      // A hidden piece is still served to a child whose view is a poll behind.
      assert.ok((await other.piece(p, digest, 2, AbortSignal.timeout(10_000), PS)).equals(blob.subarray(2 * PS, 3 * PS)));
      // Waiting on view 1 ends when another upload starts, not before.
      const t0 = performance.now();
      const polled = t.bitfield(p, digest, after.count, 5000, undefined, 1);
      await new Promise((r) => setTimeout(r, 150));
      await other.piece(p, digest, 5, AbortSignal.timeout(10_000), PS);
      const next = await polled;
      const waited = performance.now() - t0;
      assert.ok(waited >= 140 && waited < 3000, `the poll answered after ${Math.round(waited)} ms`);
      assert.equal(next.view, 2);
      assert.equal(shown(next).has(5), false);
      // A lone child gets every piece although the seed shows it only some at a time.
      const scheduler = { announce: async () => ({ parents: [p], pieces: manifest, announceIntervalMs: 100, backToSource: false }) };
      const d = new TaskDownloader({ self: { ...agent, id: 'lone' }, digest, scheduler, transport: t, store: bStore, bitfieldWaitMs: 2000 });
      const t1 = performance.now();
      const r = await d.run();
      assert.equal(r.outcome, 'done');
      // Pieces 2 and 5 stay hidden for 5 s; idle, the child asks the seed for them anyway.
      assert.ok(performance.now() - t1 < 5000, 'the lone child waited for hidden pieces to be shown again');
      if (r.outcome === 'done') assert.equal(digestOf(await readFile(r.path)), digest);
    } finally {
      routes.close();
      await Promise.all([t.close(), other.close()]);
      await new Promise((r) => server.close(r));
      await bStore.close();
    }
  });

  it('a seed serves one piece at a time per child (by the peer id its transport sends): the second is busy at once while slots are free', async () => {
    // Four slots, a line of one, pieces paced to ~500 ms so the requests overlap.
    const routes = createPeerRoutes({ store: seedStore, clusterToken: TOKEN, maxConcurrentUploads: 4, uploadQueue: 1, uploadQueueWaitMs: 5000, uploadsPerChild: uploadsPerChildFor('seed'), uploadLimiter: new RateLimiter({ rate: 128 * 1024, burst: 4096 }) });
    const { server, url } = await peerServer(routes);
    const alice = new HttpPeerTransport({ clusterToken: TOKEN, peerId: 'agent-a' });
    const bob = new HttpPeerTransport({ clusterToken: TOKEN, peerId: 'agent-b' });
    try {
      const p: PeerInfo = { id: 'seed', url, role: 'seed', labels: {} };
      const ask = (t: HttpPeerTransport, i: number) => t.piece(p, digest, i, AbortSignal.timeout(10_000), PS).then((buf) => (buf.equals(blob.subarray(i * PS, (i + 1) * PS)) ? 'ok' : 'corrupt'), (err: unknown) => (isTransportError(err, 'busy') ? 'busy' : String(err)));
      const first = ask(alice, 0);
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      const second = await ask(alice, 1);
      const secondMs = performance.now() - t0;
      const other = ask(bob, 2);
      assert.equal(second, 'busy', 'the same child asked for a second piece while its first was in flight');
      assert.ok(secondMs < 400, `busy at once, not after a wait in line (${Math.round(secondMs)} ms)`);
      assert.deepEqual(await Promise.all([first, other]), ['ok', 'ok'], 'another child took a free slot');
      assert.equal(await ask(alice, 1), 'ok', 'once its piece is done the child may ask again');
      assert.equal(routes.stats.busyRejections, 1);
    } finally {
      await alice.close();
      await bob.close();
      await new Promise((r) => server.close(r));
    }
  });
  it('a request that finds every upload slot taken waits in line for the next one; past the line it is told busy', async () => {
    // One slot, one place in line, pieces paced to ~250 ms each so the requests overlap.
    const routes = createPeerRoutes({ store: seedStore, clusterToken: TOKEN, maxConcurrentUploads: 1, uploadQueue: 1, uploadQueueWaitMs: 5000, uploadLimiter: new RateLimiter({ rate: 128 * 1024, burst: 4096 }) });
    const { server, url } = await peerServer(routes);
    const t = new HttpPeerTransport({ clusterToken: TOKEN });
    try {
      const p: PeerInfo = { id: 'slots', url, role: 'seed', labels: {} };
      const ask = (i: number) => t.piece(p, digest, i, AbortSignal.timeout(10_000), PS).then((buf) => ({ ok: buf.equals(blob.subarray(i * PS, (i + 1) * PS)) }), (err: unknown) => ({ err }));
      const first = ask(0);
      await new Promise((r) => setTimeout(r, 50));
      const second = ask(1);
      await new Promise((r) => setTimeout(r, 50));
      const third = ask(2);
      const [a, b, c] = await Promise.all([first, second, third]);
      assert.deepEqual(a, { ok: true });
      assert.deepEqual(b, { ok: true }, 'the second request waited for the slot instead of being refused');
      assert.ok('err' in c && isTransportError(c.err) && c.err.kind === 'busy', 'the line was full: busy');
      // The server counts a piece once its pipeline ends, which may be just after the client has it.
      for (let i = 0; i < 100 && routes.stats.activeUploads > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(routes.stats.piecesServed, 2);
      assert.equal(routes.stats.busyRejections, 1);
      assert.equal(routes.stats.activeUploads, 0);
    } finally {
      await t.close();
      await new Promise((r) => server.close(r));
    }
  });
});
