import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import pino from 'pino';
import { Agent, request } from 'undici';
import { digestOf } from '../../../src/oci/digest.js';
import type { AnnounceRequest, AnnounceResponse, PeerInfo, PieceManifest } from '../../../src/p2p/protocol.js';
import { PATHS } from '../../../src/p2p/protocol.js';
import { SchedulerCore } from '../../../src/p2p/scheduler/core.js';
import { rendezvous } from '../../../src/p2p/scheduler/locality.js';
import { seededRandom } from '../../../src/p2p/scheduler/random.js';
import { createSchedulerServer } from '../../../src/p2p/scheduler/server.js';

const TOKEN = 'cluster-secret';
const log = pino({ level: 'silent' });
const agentPool = new Agent({ keepAliveTimeout: 1000 });
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  await agentPool.close();
});

/** A fake seed: records fetch requests, answers with `status`. */
async function fakeSeed(status: number) {
  const got: Array<{ auth: string | undefined; body: unknown }> = [];
  let notify: () => void = () => {};
  const server: Server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === PATHS.seedFetch) {
        got.push({ auth: req.headers.authorization, body: JSON.parse(data) });
        notify();
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const next = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`seed ${url} got ${got.length} fetch requests, wanted ${n}`)), 3000);
      const check = () => {
        if (got.length >= n) {
          clearTimeout(t);
          resolve();
        }
      };
      notify = check;
      check();
    });
  return { url, got, next };
}

async function startScheduler(extra: Partial<Parameters<typeof createSchedulerServer>[0]> = {}) {
  const core = new SchedulerCore({ random: seededRandom(1), intervalJitter: 0 });
  const sched = createSchedulerServer({ core, log, clusterToken: TOKEN, registryUrl: 'http://127.0.0.1:5000', expireIntervalMs: 50, ...extra });
  const base = await sched.listen(0, '127.0.0.1');
  closers.push(() => sched.close());
  return { core, sched, base };
}

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    dispatcher: agentPool,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

const DIGEST = digestOf('http-layer');
const agentInfo = (id: string): PeerInfo => ({ id, url: `http://127.0.0.1:9/${id}`, role: 'agent', labels: { zone: 'z1' } });
const announceBody = (id: string, extra: Partial<AnnounceRequest> = {}): AnnounceRequest => ({
  peer: agentInfo(id),
  task: { digest: DIGEST, repo: 'team/app' },
  state: 'started',
  completedPieces: 0,
  wantParents: 4,
  ...extra,
});
const manifest: PieceManifest = { digest: DIGEST, size: 10, pieceSize: 4, pieceDigests: [digestOf('a'), digestOf('b'), digestOf('c')] };

test('scheduler HTTP API: token, validation, seed fetch, publish, status, metrics', async () => {
  const seedSrv = await fakeSeed(202);
  const { base } = await startScheduler();
  const seedInfo: PeerInfo = { id: 'seed-a', url: seedSrv.url, role: 'seed', labels: { zone: 'z1' } };

  assert.equal((await call(base, 'GET', '/healthz', undefined, {})).status, 200, 'health needs no token');

  const noToken = await call(base, 'POST', PATHS.announce, announceBody('a1'), {});
  assert.equal(noToken.status, 401);
  assert.equal(noToken.json.error, 'UNAUTHORIZED');
  assert.equal((await call(base, 'POST', PATHS.announce, announceBody('a1'), { authorization: 'Bearer nope' })).status, 401);
  assert.equal((await call(base, 'POST', PATHS.announce, announceBody('a1'), { authorization: `Basic ${TOKEN}` })).status, 401);

  const bad = await call(base, 'POST', PATHS.announce, { ...announceBody('a1'), peer: { id: 'a1', role: 'agent' }, wantParents: -1 });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error, 'BAD_REQUEST');
  assert.match(bad.json.detail, /peer\.url/);
  assert.match(bad.json.detail, /wantParents/);
  const badDigest = await call(base, 'POST', PATHS.announce, { ...announceBody('a1'), task: { digest: 'sha256:nothex' } });
  assert.equal(badDigest.status, 400);
  assert.match(badDigest.json.detail, /task\.digest: must be a digest/);
  const notJson = await call(base, 'POST', PATHS.announce, '{"peer":');
  assert.equal(notJson.status, 400);
  assert.match(notJson.json.detail, /not valid JSON/);
  const huge = await call(base, 'POST', PATHS.heartbeat, { peer: seedInfo, pad: 'x'.repeat(2 * 1024 * 1024) });
  assert.equal(huge.status, 413);
  assert.equal(huge.json.error, 'TOO_LARGE');

  // Chunked (no Content-Length): cut off while streaming, still a clean 413.
  const chunked = await request(`${base}${PATHS.heartbeat}`, {
    method: 'POST',
    dispatcher: agentPool,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: Readable.from(
      (function* () {
        for (let i = 0; i < 40; i++) yield Buffer.alloc(64 * 1024, 0x20);
      })(),
    ),
  });
  assert.equal(chunked.statusCode, 413);
  assert.equal(((await chunked.body.json()) as { error: string }).error, 'TOO_LARGE');

  const hb = await call(base, 'POST', PATHS.heartbeat, { peer: seedInfo });
  assert.equal(hb.status, 200);
  assert.equal(hb.json.announceIntervalMs, 2000);

  const first = await call(base, 'POST', PATHS.announce, announceBody('a1'));
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(first.json as AnnounceResponse, { parents: [], announceIntervalMs: 2000, backToSource: false });
  await seedSrv.next(1);
  assert.deepEqual(seedSrv.got[0], { auth: `Bearer ${TOKEN}`, body: { digest: DIGEST, repo: 'team/app', registry: 'http://127.0.0.1:5000' } });
  await call(base, 'POST', PATHS.announce, announceBody('a2'));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seedSrv.got.length, 1, 'asked once per task');

  const byAgent = await call(base, 'POST', PATHS.publishPieces(DIGEST), { ...manifest, peerId: 'a1' });
  assert.equal(byAgent.status, 403);
  assert.equal(byAgent.json.error, 'NOT_A_SEED');
  const mismatch = await call(base, 'POST', PATHS.publishPieces(digestOf('other')), { ...manifest, peerId: 'seed-a' });
  assert.equal(mismatch.status, 400);
  const anonymous = await call(base, 'POST', PATHS.publishPieces(DIGEST), manifest);
  assert.equal(anonymous.status, 403, 'unnamed, and no live seed holds the blob yet');
  const named = await call(base, 'POST', PATHS.publishPieces(DIGEST), manifest, { authorization: `Bearer ${TOKEN}`, 'x-shoal-peer-id': 'seed-a' });
  assert.equal(named.status, 200, named.text);
  // What the seed does: heartbeat its holdings, then publish the bare manifest.
  await call(base, 'POST', PATHS.heartbeat, { peer: seedInfo, completeTasks: [DIGEST] });
  const published = await call(base, 'POST', PATHS.publishPieces(DIGEST), manifest);
  assert.equal(published.status, 200, published.text);
  const conflict = await call(base, 'POST', PATHS.publishPieces(encodeURIComponent(DIGEST)), { ...manifest, pieceDigests: [digestOf('x'), digestOf('y'), digestOf('z')], peerId: 'seed-a' });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.json.error, 'MANIFEST_CONFLICT');

  const next = await call(base, 'POST', PATHS.announce, announceBody('a1'));
  assert.deepEqual(next.json.parents.map((p: PeerInfo) => p.id), ['seed-a']);
  assert.deepEqual(next.json.pieces, manifest);

  const status = await call(base, 'GET', PATHS.task(DIGEST));
  assert.equal(status.status, 200);
  assert.equal(status.json.peers, 2);
  assert.deepEqual(status.json.seeds, ['seed-a']);
  assert.equal(status.json.pieces.pieceDigests.length, 3);
  assert.equal((await call(base, 'GET', PATHS.task(digestOf('nobody')))).status, 404);
  assert.equal((await call(base, 'GET', PATHS.task('nope'))).status, 400);
  assert.equal((await call(base, 'GET', '/scheduler/v1/nothing')).status, 404);
  const wrongMethod = await call(base, 'GET', PATHS.announce);
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.allow, 'POST');

  const metrics = await call(base, 'GET', '/metrics', undefined, {});
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^shoal_scheduler_announces_total 3$/m);
  assert.match(metrics.text, /^shoal_scheduler_seed_fetch_requests_total 1$/m);
  assert.match(metrics.text, /^shoal_scheduler_active_peers 3$/m);
  assert.match(metrics.text, /^shoal_scheduler_manifest_conflicts_total 1$/m);
  assert.match(metrics.text, /shoal_scheduler_http_request_duration_seconds_bucket\{le="0.001",route="announce"\}/);
  assert.match(metrics.text, /^shoal_process_cpu_seconds_total /m);
});

test('a seed that refuses the fetch is reported to the core, which asks another seed', async () => {
  const good = await fakeSeed(202);
  const badSeed = await fakeSeed(500);
  // Name the seeds so that rendezvous hashing picks the failing one first.
  const names = ['seed-x', 'seed-y'];
  const firstChoice = rendezvous(DIGEST, names, (n) => n)!;
  const other = names.find((n) => n !== firstChoice)!;
  const { core, base } = await startScheduler();
  await call(base, 'POST', PATHS.heartbeat, { peer: { id: firstChoice, url: badSeed.url, role: 'seed', labels: {} } });
  await call(base, 'POST', PATHS.heartbeat, { peer: { id: other, url: `${good.url}/`, role: 'seed', labels: {} } });
  await call(base, 'POST', PATHS.announce, announceBody('a1'));
  await badSeed.next(1);
  await good.next(1);
  assert.equal(core.stats().seedFetchFailures, 1);
  assert.equal(core.taskStatus(DIGEST)!.seedFetch?.seed, other);
});

test('extra routes plug in and share the token check', async () => {
  const { base } = await startScheduler({
    routes: [{ name: 'preheat', method: 'POST', pattern: /^\/scheduler\/v1\/preheat$/, handle: (ctx) => ctx.json(202, { id: 'p1' }) }],
  });
  assert.equal((await call(base, 'POST', PATHS.preheat, {}, {})).status, 401);
  const ok = await call(base, 'POST', PATHS.preheat, {});
  assert.equal(ok.status, 202);
  assert.deepEqual(ok.json, { id: 'p1' });
});

test('without a cluster token the API is open', async () => {
  const { base } = await startScheduler({ clusterToken: undefined });
  const r = await call(base, 'POST', PATHS.announce, announceBody('a1'), {});
  assert.equal(r.status, 200);
  assert.equal(r.json.backToSource, true, 'no seed registered: back to source');
});

