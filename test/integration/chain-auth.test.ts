// The delivery chain with token auth on (issue 5): the chain API is for administrators, the pull
// gate runs after authentication and RBAC and lets administrators through, and replication reads
// this registry in-process (no token of its own) while the target needs none.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { admin, getToken, http, pushWithToken } from '../support/auth.js';
import { OSV_FIXTURES, buildCleanImage, buildDebianAppImage } from '../support/scan-images.js';
import { run, tempDir, removeDir } from '../support/tools.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const DEV = { user: 'dev', password: 'dev-password-12' };

describe('delivery chain with token auth on', () => {
  let reg: RunningShoal;
  let target: RunningShoal;
  let data: string;
  let adminToken = '';
  let devToken = '';

  before(async () => {
    data = await tempDir('chain-auth');
    await run(process.execPath, [shoalBin, 'vulndb', 'import', OSV_FIXTURES, '--data', data]);
    reg = await startShoal({ dataDir: data, args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
    target = await startShoal({ args: ['--no-chains'] });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'team' });
    await admin(reg.url, ADMIN, 'POST', 'users', { name: DEV.user, password: DEV.password });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/dev', { role: 'maintainer' });
    adminToken = await getToken(reg.url, ADMIN, ['repository:team/vuln:pull,push', 'repository:team/clean:pull,push']);
    devToken = await getToken(reg.url, DEV, ['repository:team/vuln:pull,push', 'repository:team/clean:pull']);
  });
  after(async () => {
    await reg?.stop();
    await target?.stop();
    if (data) await removeDir(data);
  });

  const chainApi = (method: string, path: string, creds?: { user: string; password: string }, body?: unknown) =>
    http(method, `${reg.url}/api/v1/chains${path}`, { basic: creds, body: body === undefined ? undefined : JSON.stringify(body), headers: body === undefined ? {} : { 'content-type': 'application/json' } });

  async function finishedRun(repo: string): Promise<{ status: string; reason?: string }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const runs = (await chainApi('GET', `/_runs?repo=${repo}`, ADMIN)).json().runs as Array<{ status: string; reason?: string }>;
      if (runs[0] && ['succeeded', 'failed', 'blocked'].includes(runs[0].status)) return runs[0];
      if (Date.now() > deadline) throw new Error(`no finished run for ${repo}: ${JSON.stringify(runs)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('only administrators may use the chain API', async () => {
    assert.equal((await chainApi('GET', '')).status, 401);
    assert.equal((await chainApi('GET', '', DEV)).status, 403);
    assert.equal((await chainApi('GET', '', { user: 'admin', password: 'wrong-password' })).status, 401);
    const put = await chainApi('PUT', '/ship', ADMIN, { repositories: ['team/**'], replicate: { targets: [{ name: 'eu', url: target.url }] } });
    assert.equal(put.status, 200, put.body.toString());
    assert.equal((await chainApi('PUT', '/_gate/policies/team', ADMIN, { severity: 'HIGH' })).status, 200);
    // The CLI sends SHOAL_USER / SHOAL_PASSWORD.
    const list = await run(process.execPath, [shoalBin, 'chain', '--registry', reg.url, 'list'], { env: { SHOAL_USER: ADMIN.user, SHOAL_PASSWORD: ADMIN.password } });
    assert.match(list.stdout, /^ship /m);
  });

  it('a blocked image is refused to a member with pull rights, served to an administrator', async () => {
    const image = buildDebianAppImage();
    await pushWithToken(reg.url, 'team/vuln', 'v1', image, devToken);
    const r = await finishedRun('team/vuln');
    assert.equal(r.status, 'blocked', r.reason);
    const dev = await http('GET', `${reg.url}/v2/team/vuln/manifests/v1`, { token: devToken, headers: { accept: image.manifest.mediaType } });
    assert.equal(dev.status, 403);
    assert.equal(dev.json().errors[0].code, 'DENIED');
    assert.match(dev.json().errors[0].message, /gate policy "team"/);
    const anonymous = await http('GET', `${reg.url}/v2/team/vuln/manifests/v1`);
    assert.equal(anonymous.status, 401, 'authentication comes before the gate');
    const adm = await http('GET', `${reg.url}/v2/team/vuln/manifests/v1`, { token: adminToken, headers: { accept: image.manifest.mediaType } });
    assert.equal(adm.status, 200);
  });

  it('a clean image is replicated although the source requires tokens', async () => {
    const image = buildCleanImage();
    await pushWithToken(reg.url, 'team/clean', 'v1', image, adminToken);
    const r = await finishedRun('team/clean');
    assert.equal(r.status, 'succeeded', r.reason);
    const m = await http('GET', `${target.url}/v2/team/clean/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    assert.equal(m.status, 200);
    assert.equal(m.headers['docker-content-digest'], image.manifest.digest);
  });
});
