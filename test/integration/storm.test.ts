// Under a storm of secondary requests (catalog and admin API) that the registry sheds with 429 +
// Retry-After, manifest pulls keep being served; the global concurrency budget sheds held
// secondary work (slow upload PATCHes) but never pulls; per-token limits follow the account.
// Counts only, no timings (waits are bounded polls).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startShoal, type RunningShoal } from '../support/server.js';
import { buildBusyboxImage } from '../support/image.js';
import { admin, getToken, http, pushWithToken } from '../support/auth.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const FLOOD_WORKERS = 16;
const FLOOD_PER_WORKER = 40;
const PULL_WORKERS = 4;
const PULLS_PER_WORKER = 50;

describe('storm: pulls keep flowing while secondary work is shed', () => {
  let reg: RunningShoal;
  const img = buildBusyboxImage({ hello: 'storm\n' });
  let adminToken = '';

  before(async () => {
    reg = await startShoal({
      args: ['--auth', '--rate-limit-ip', '0,20', '--max-concurrent', '64', '--access-log', 'off'],
      env: { SHOAL_ADMIN_PASSWORD: ADMIN.password },
    });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'team' });
    adminToken = await getToken(reg.url, ADMIN, ['repository:team/app:pull,push', 'registry:catalog:*']);
    await pushWithToken(reg.url, 'team/app', '1', img, adminToken);
  });
  after(async () => reg?.stop());

  it('a bounded flood of catalog/admin requests gets 429s; every manifest GET during it answers 200', async () => {
    const flood = { ok: 0, limited: 0, other: 0, retryAfter: true };
    const pulls = { ok: 0, failed: [] as number[] };
    let floodDone = false;
    const floodWorker = async (w: number) => {
      for (let i = 0; i < FLOOD_PER_WORKER; i++) {
        const res = (i + w) % 2 === 0
          ? await http('GET', `${reg.url}/v2/_catalog`, { token: adminToken })
          : await http('GET', `${reg.url}/api/v1/namespaces`, { basic: ADMIN });
        if (res.status === 200) flood.ok++;
        else if (res.status === 429) {
          flood.limited++;
          if (!/^\d+$/.test(String(res.headers['retry-after'])) || res.json().errors[0].code !== 'TOOMANYREQUESTS') flood.retryAfter = false;
        } else flood.other++;
      }
    };
    const pullWorker = async () => {
      // Pulls run while the flood runs (and at least PULLS_PER_WORKER times each).
      for (let i = 0; i < PULLS_PER_WORKER || (!floodDone && i < PULLS_PER_WORKER * 20); i++) {
        const res = await http('GET', `${reg.url}/v2/team/app/manifests/1`, { token: adminToken, headers: { accept: img.manifest.mediaType } });
        if (res.status === 200) pulls.ok++;
        else pulls.failed.push(res.status);
      }
    };
    const floodAll = Promise.all(Array.from({ length: FLOOD_WORKERS }, (_, w) => floodWorker(w))).then(() => (floodDone = true));
    await Promise.all([floodAll, ...Array.from({ length: PULL_WORKERS }, pullWorker)]);

    assert.equal(flood.ok + flood.limited + flood.other, FLOOD_WORKERS * FLOOD_PER_WORKER);
    assert.equal(flood.other, 0, 'the flood only ever got 200 or 429');
    assert.ok(flood.limited > flood.ok, `most of the flood was shed: ${JSON.stringify(flood)}`);
    assert.ok(flood.retryAfter, '429s carry Retry-After and TOOMANYREQUESTS');
    assert.deepEqual(pulls.failed, [], 'no manifest GET failed');
    assert.ok(pulls.ok >= PULL_WORKERS * PULLS_PER_WORKER, `pulls served: ${pulls.ok}`);
    console.log(`# storm: flood ${flood.ok} served / ${flood.limited} shed; manifest GETs ${pulls.ok} served / ${pulls.failed.length} failed`);
  });
});

/** A PATCH that sends its first bytes and then holds the request open until `finish()`. */
function slowPatch(url: string): { response: Promise<number>; finish(): void } {
  const req = httpRequest(url, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, agent: false });
  const response = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
  req.setTimeout(30_000, () => req.destroy(new Error(`timeout: PATCH ${url}`)));
  req.write(Buffer.alloc(64, 1));
  return { response, finish: () => req.end(Buffer.alloc(64, 2)) };
}

const settledWithin = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p.then((v) => ({ v })), new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);

describe('storm: the global concurrency budget (--max-concurrent) sheds held secondary work, never pulls', () => {
  const MAX = 8;
  const HELD = MAX / 2 + 1; // one more than secondary work may hold
  let reg: RunningShoal;
  const img = buildBusyboxImage({ hello: 'budget\n' });

  before(async () => {
    reg = await startShoal({ args: ['--max-concurrent', String(MAX), '--access-log', 'off'] });
    await pushWithToken(reg.url, 'team/app', '1', img, '');
  });
  after(async () => reg?.stop());

  it(`${HELD} slow upload PATCHes: ${MAX / 2} are held, the rest and the catalog get 429 + Retry-After; manifest GETs all answer 200`, async () => {
    const sessions: string[] = [];
    for (let i = 0; i < HELD; i++) {
      const post = await http('POST', `${reg.url}/v2/team/app/blobs/uploads/`);
      assert.equal(post.status, 202);
      sessions.push(new URL(String(post.headers.location), reg.url).toString());
    }
    const patches = sessions.map(slowPatch);
    try {
      // The one PATCH over the share is answered at once; the admitted ones wait for their body.
      const answered = await settledWithin(Promise.race(patches.map((p, i) => p.response.then((status) => ({ i, status })))), 10_000);
      assert.ok(answered, 'one PATCH over the secondary share is refused without waiting for its body');
      assert.equal(answered.v.status, 429);
      // Every PATCH got its headers to the server; the held ones keep the secondary share full.
      let catalog = await http('GET', `${reg.url}/v2/_catalog`);
      for (let i = 0; i < 50 && catalog.status !== 429; i++) {
        await new Promise((r) => setTimeout(r, 100));
        catalog = await http('GET', `${reg.url}/v2/_catalog`);
      }
      assert.equal(catalog.status, 429, 'the catalog is shed while the share is held');
      assert.match(String(catalog.headers['retry-after']), /^\d+$/);
      assert.equal(catalog.json().errors[0].code, 'TOOMANYREQUESTS');
      assert.match(catalog.json().errors[0].message, /concurrency limit/);

      const pulls = { ok: 0, failed: [] as number[] };
      const shed = { limited: 0, other: [] as number[] };
      const pullWorker = async () => {
        for (let i = 0; i < 25; i++) {
          const res = await http('GET', `${reg.url}/v2/team/app/manifests/1`, { headers: { accept: img.manifest.mediaType } });
          if (res.status === 200) pulls.ok++;
          else pulls.failed.push(res.status);
        }
      };
      const catalogWorker = async () => {
        for (let i = 0; i < 10; i++) {
          const res = await http('GET', `${reg.url}/v2/_catalog`);
          if (res.status === 429 && /^\d+$/.test(String(res.headers['retry-after'])) && res.json().errors[0].code === 'TOOMANYREQUESTS') shed.limited++;
          else shed.other.push(res.status);
        }
      };
      // Held (MAX/2) + 2 pull workers + 1 catalog probe stay below MAX: pulls must always fit.
      await Promise.all([pullWorker(), pullWorker(), catalogWorker()]);
      assert.deepEqual(pulls.failed, [], 'no manifest GET failed while secondary work held its share');
      assert.equal(pulls.ok, 50);
      assert.deepEqual(shed.other, [], 'every catalog request during the hold was shed with the spec answer');
      assert.equal(shed.limited, 10);
    } finally {
      for (const p of patches) p.finish();
    }
    const statuses = await Promise.all(patches.map((p) => p.response));
    assert.deepEqual(statuses.filter((s) => s === 202).length, MAX / 2, `held PATCHes completed: ${statuses}`);
    assert.deepEqual(statuses.filter((s) => s === 429).length, HELD - MAX / 2);
    // Finished requests give their slots back (bounded wait: release runs when the response closes).
    let after = await http('GET', `${reg.url}/v2/_catalog`);
    for (let i = 0; i < 50 && after.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await http('GET', `${reg.url}/v2/_catalog`);
    }
    assert.equal(after.status, 200, 'the budget is free again');
  });
});

describe('storm: per-token limits (--rate-limit-token) follow the account across addresses', () => {
  let reg: RunningShoal;
  const img = buildBusyboxImage({ hello: 'per token\n' });
  const DEV = { user: 'dev', password: 'dev-password-1' };
  const OPS = { user: 'ops', password: 'ops-password-1' };

  before(async () => {
    // Pulls 0.05/s per account (burst 1): the second pull of one account within 20 s is refused.
    reg = await startShoal({ args: ['--auth', '--rate-limit-token', '0.05,0', '--access-log', 'off'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'team' });
    for (const u of [DEV, OPS]) {
      await admin(reg.url, ADMIN, 'POST', 'users', { name: u.user, password: u.password });
      await admin(reg.url, ADMIN, 'PUT', `namespaces/team/members/${u.user}`, { role: 'developer' });
    }
    await pushWithToken(reg.url, 'team/app', '1', img, await getToken(reg.url, ADMIN, ['repository:team/app:pull,push']));
  });
  after(async () => reg?.stop());

  it('one account from two addresses shares one budget; another account from the same address has its own', async () => {
    const pull = (token: string, from: string) => http('GET', `${reg.url}/v2/team/app/manifests/1`, { token, localAddress: from, headers: { accept: img.manifest.mediaType } });
    const dev = await getToken(reg.url, DEV, ['repository:team/app:pull']);
    const ops = await getToken(reg.url, OPS, ['repository:team/app:pull']);
    const fresh = await getToken(reg.url, DEV, ['repository:team/app:pull']);
    // The four pulls below take milliseconds; the bucket needs 20 s to earn the next pull.
    assert.equal((await pull(dev, '127.0.0.1')).status, 200);
    const second = await pull(dev, '127.0.0.2');
    assert.equal(second.status, 429, 'the same account from another address');
    assert.match(String(second.headers['retry-after']), /^\d+$/);
    assert.equal(second.json().errors[0].code, 'TOOMANYREQUESTS');
    assert.match(second.json().errors[0].message, /account dev/);
    assert.equal((await pull(fresh, '127.0.0.3')).status, 429, 'a freshly minted token of the same account buys no budget');
    assert.equal((await pull(ops, '127.0.0.2')).status, 200, 'another account from the same address');
  });
});
