// Under a storm of secondary requests (catalog and admin API) that the registry sheds with 429 +
// Retry-After, manifest pulls keep being served. Counts only, no timings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
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
