// Tenancy policies on a real `shoal serve --auth` process: first-run bootstrap, tag immutability,
// namespace quotas, the OAuth2 token grants containerd and podman use, the admin API's typed
// errors, and the `shoal user|ns|robot|policy|audit` CLI over HTTP.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { buildBusyboxImage, sha256 } from '../support/image.js';
import { admin, getToken, http, pushWithToken } from '../support/auth.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const DEV = { user: 'dev', password: 'dev-password-1' };

function shoal(args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [shoalBin, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(input ?? '');
  });
}

/** PUT with Transfer-Encoding: chunked (no Content-Length), as a streaming client sends it. */
function chunkedPut(url: string, token: string, body: Buffer, contentType: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout: PUT ${url}`)));
    req.on('error', reject);
    req.write(body.subarray(0, 10));
    req.end(body.subarray(10));
  });
}

describe('tenancy policies', () => {
  let reg: RunningShoal;
  const v1 = buildBusyboxImage({ hello: 'v1\n' });
  const v1b = buildBusyboxImage({ hello: 'v1, rebuilt\n' });
  let devToken = '';

  before(async () => {
    reg = await startShoal({ args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'team' });
    await admin(reg.url, ADMIN, 'POST', 'users', { name: DEV.user, password: DEV.password });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/dev', { role: 'maintainer' });
    devToken = await getToken(reg.url, DEV, ['repository:team/app:pull,push,delete', 'repository:team/big:pull,push']);
  });
  /** Data dirs a restarted registry reuses: the restarted process does not own them, so they are removed here. */
  const reusedDirs: string[] = [];
  after(async () => {
    await reg?.stop();
    for (const d of reusedDirs) await rm(d, { recursive: true, force: true });
  });

  it('bootstrap: SHOAL_ADMIN_PASSWORD created admin once; a restart with another password does not change it; tokens survive the restart', async () => {
    const dir = reg.dataDir;
    reusedDirs.push(dir);
    const before = await getToken(reg.url, ADMIN, ['registry:catalog:*']);
    await reg.stop({ keepData: true });
    reg = await startShoal({ dataDir: dir, args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: 'another-password' } });
    assert.equal((await http('GET', `${reg.url}/v2/_catalog`, { token: before })).status, 200, 'the signing key persisted in the data dir');
    assert.equal((await http('GET', `${reg.url}/auth/token?service=shoal`, { basic: { user: 'admin', password: 'another-password' } })).status, 401);
    assert.equal((await http('GET', `${reg.url}/auth/token?service=shoal`, { basic: ADMIN })).status, 200);
    assert.equal(reg.output.some((l) => l.includes('created user')), false);
    const weakDir = await mkdtemp(join(tmpdir(), 'shoal-test-'));
    const weak = await startShoal({ dataDir: weakDir, args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: 'short' } }).then(
      async (r) => (await r.stop(), null),
      (e: Error) => e,
    );
    await rm(weakDir, { recursive: true, force: true });
    assert.match(String(weak?.message), /SHOAL_ADMIN_PASSWORD is too weak: password must be at least 8 characters/);
  });

  it('bootstrap without SHOAL_ADMIN_PASSWORD: a generated admin password, printed once and left in a 0600 file; no default password', async () => {
    const fresh = await startShoal({ args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: '' } });
    try {
      assert.equal((await http('GET', `${fresh.url}/auth/token?service=shoal`, { basic: { user: 'admin', password: 'admin' } })).status, 401, 'no default password');
      const lines = fresh.output.filter((l) => /generated password/.test(l) && !l.startsWith('{'));
      assert.equal(lines.length, 1, `one plain stderr line: ${fresh.output.join('\n')}`);
      assert.match(lines[0]!, /change it/);
      const password = /generated password (\S+)/.exec(lines[0]!)![1]!;
      assert.ok(password.length >= 20, 'a strong password');
      const file = join(fresh.dataDir, 'auth', 'initial-admin-password');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(readFileSync(file, 'utf8').trim(), password);
      const token = await getToken(fresh.url, { user: 'admin', password }, ['registry:catalog:*']);
      assert.equal((await http('GET', `${fresh.url}/v2/_catalog`, { token })).status, 200, 'the generated admin is an administrator');
      await fresh.stop({ keepData: true });
      const again = await startShoal({ dataDir: fresh.dataDir, args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: '' } });
      try {
        assert.equal(again.output.some((l) => /generated password/.test(l)), false, 'nothing generated once a user exists');
        assert.equal(readFileSync(file, 'utf8').trim(), password);
        assert.equal((await http('GET', `${again.url}/auth/token?service=shoal`, { basic: { user: 'admin', password } })).status, 200);
      } finally {
        await again.stop();
      }
    } finally {
      await fresh.stop();
    }
  });

  it('tag immutability: v* cannot be overwritten or deleted; identical re-push and other tags are fine', async () => {
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/immutable', { patterns: ['v*'] });
    await pushWithToken(reg.url, 'team/app', 'v1', v1, devToken);
    await pushWithToken(reg.url, 'team/app', 'v1', v1, devToken); // identical: allowed
    await assert.rejects(pushWithToken(reg.url, 'team/app', 'v1', v1b, devToken), /put manifest: 403 .*DENIED.*immutable/);
    const m = await http('GET', `${reg.url}/v2/team/app/manifests/v1`, { token: devToken });
    assert.equal(sha256(m.body), v1.manifest.digest, 'v1 unchanged');
    for (const ref of ['v1', v1.manifest.digest]) {
      const del = await http('DELETE', `${reg.url}/v2/team/app/manifests/${ref}`, { token: devToken });
      assert.equal(del.status, 403, `DELETE ${ref}`);
      assert.equal(del.json().errors[0].code, 'DENIED');
    }
    const refused = await admin(reg.url, ADMIN, 'GET', 'audit?actor=dev&target=team/app');
    assert.ok(refused.some((r: { action: string; outcome: string; target: string }) => r.action === 'push' && r.outcome === 'DENIED' && r.target === 'team/app:v1'), 'the refused overwrite is audited');
    assert.ok(refused.some((r: { action: string; outcome: string }) => r.action === 'delete' && r.outcome === 'DENIED'), 'the refused delete is audited');
    await pushWithToken(reg.url, 'team/app', 'latest', v1, devToken);
    await pushWithToken(reg.url, 'team/app', 'latest', v1b, devToken);
    assert.equal((await http('DELETE', `${reg.url}/v2/team/app/manifests/latest`, { token: devToken })).status, 202);
  });

  it('audit: tag and manifest DELETEs and manifest HEADs are recorded with who, what and from where', async () => {
    const gone = buildBusyboxImage({ hello: 'to be deleted ' + Math.random() });
    await pushWithToken(reg.url, 'team/app', 'gone', gone, devToken);
    await pushWithToken(reg.url, 'team/app', 'bye', v1b, devToken);
    assert.equal((await http('DELETE', `${reg.url}/v2/team/app/manifests/gone`, { token: devToken, localAddress: '127.0.0.3' })).status, 202, 'tag DELETE');
    assert.equal((await http('DELETE', `${reg.url}/v2/team/app/manifests/${gone.manifest.digest}`, { token: devToken, localAddress: '127.0.0.3' })).status, 202, 'manifest DELETE');
    assert.equal((await http('HEAD', `${reg.url}/v2/team/app/manifests/bye`, { token: devToken, localAddress: '127.0.0.4', headers: { accept: v1b.manifest.mediaType } })).status, 200);
    type Rec = { actor: string; action: string; target: string; clientIp: string; outcome: string; at: number };
    const deletes = (await admin(reg.url, ADMIN, 'GET', 'audit?actor=dev&action=delete')) as Rec[];
    const find = (target: string) => deletes.find((r) => r.target === target && r.outcome === 'ok');
    for (const target of ['team/app:gone', `team/app@${gone.manifest.digest}`]) {
      const rec = find(target);
      assert.ok(rec, `a delete record for ${target}: ${JSON.stringify(deletes)}`);
      assert.equal(rec.actor, 'dev');
      assert.equal(rec.clientIp, '127.0.0.3');
      assert.ok(rec.at > 0);
    }
    const pulls = (await admin(reg.url, ADMIN, 'GET', 'audit?actor=dev&action=pull&target=team/app:bye')) as Rec[];
    assert.ok(pulls.some((r) => r.clientIp === '127.0.0.4' && r.outcome === 'ok'), `the HEAD is audited as a pull: ${JSON.stringify(pulls)}`);
  });

  it('quota: an upload that would pass the namespace limit is refused with used/limit, and not stored', async () => {
    const ns = await admin(reg.url, ADMIN, 'GET', 'namespaces/team');
    assert.ok(ns.usedBytes > 0);
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: ns.usedBytes + 100 });
    const big = buildBusyboxImage({ hello: 'x'.repeat(5000) + Math.random() });
    const err = await pushWithToken(reg.url, 'team/big', '1', big, devToken).then(() => null, (e: Error) => e);
    assert.ok(err, 'push must fail');
    assert.match(err.message, /403 .*DENIED.*quota of namespace \\"team\\" exceeded: .* used of .*, this push adds/);
    const head = await http('HEAD', `${reg.url}/v2/team/big/blobs/${big.layers[big.layers.length - 1]!.digest}`, { token: devToken });
    assert.equal(head.status, 404);
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: null });
    await pushWithToken(reg.url, 'team/big', '1', big, devToken);
  });

  it('quota: a cross-repository mount and a manifest PUT without Content-Length count their bytes', async () => {
    const img = buildBusyboxImage({ hello: 'quota bypass ' + Math.random() });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'elsewhere' });
    const adminToken = await getToken(reg.url, ADMIN, ['repository:elsewhere/src:pull,push', 'repository:team/mounted:pull,push', 'repository:team/chunked:pull,push', 'repository:team/app:pull']);
    await pushWithToken(reg.url, 'elsewhere/src', '1', img, adminToken);
    const layer = img.layers[img.layers.length - 1]!;
    const ns = await admin(reg.url, ADMIN, 'GET', 'namespaces/team');
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: ns.usedBytes });
    try {
      const mount = await http('POST', `${reg.url}/v2/team/mounted/blobs/uploads/?mount=${layer.digest}&from=elsewhere/src`, { token: adminToken });
      assert.equal(mount.status, 403, `mount over quota: ${mount.body}`);
      assert.equal(mount.json().errors[0].code, 'DENIED');
      assert.match(mount.json().errors[0].message, /quota of namespace "team" exceeded/);
      assert.equal((await http('HEAD', `${reg.url}/v2/team/mounted/blobs/${layer.digest}`, { token: adminToken })).status, 404, 'nothing was linked');
      // A blob the namespace already holds adds nothing: mounting it at the limit is fine.
      const held = await http('POST', `${reg.url}/v2/team/mounted/blobs/uploads/?mount=${v1.config.digest}&from=team/app`, { token: adminToken });
      assert.equal(held.status, 201, `mount of a held blob: ${held.body}`);

      // Blobs of a new image first (quota off), then the manifest alone at the limit, sent chunked.
      await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: null });
      for (const b of [img.config, ...img.layers]) {
        const up = await http('POST', `${reg.url}/v2/team/chunked/blobs/uploads/?digest=${b.digest}`, { token: adminToken, body: b.data });
        assert.equal(up.status, 201);
      }
      await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: (await admin(reg.url, ADMIN, 'GET', 'namespaces/team')).usedBytes });
      const put = await chunkedPut(`${reg.url}/v2/team/chunked/manifests/1`, adminToken, img.manifest.data, img.manifest.mediaType);
      assert.equal(put.status, 403, `chunked manifest PUT over quota: ${put.body}`);
      assert.match(put.body, new RegExp(`DENIED.*this push adds ${img.manifest.data.length} B`));
      assert.equal((await http('GET', `${reg.url}/v2/team/chunked/manifests/1`, { token: adminToken })).status, 404, 'the manifest was not stored');
      await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: null });
      assert.equal((await chunkedPut(`${reg.url}/v2/team/chunked/manifests/1`, adminToken, img.manifest.data, img.manifest.mediaType)).status, 201, 'the same chunked PUT within quota works');
    } finally {
      await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/quota', { bytes: null });
    }
  });

  it('OAuth2 token grants: password with refresh token, then refresh_token; bad grants refused', async () => {
    const form = (f: Record<string, string>) => http('POST', `${reg.url}/auth/token`, { body: new URLSearchParams(f).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const first = await form({ grant_type: 'password', username: DEV.user, password: DEV.password, service: 'shoal', client_id: 'test', scope: 'repository:team/app:pull' });
    assert.equal(first.status, 200);
    const { access_token, refresh_token } = first.json();
    assert.ok(access_token && refresh_token);
    assert.equal((await http('GET', `${reg.url}/v2/team/app/manifests/v1`, { token: access_token })).status, 200);
    const again = await form({ grant_type: 'refresh_token', refresh_token, service: 'shoal', scope: 'repository:team/app:pull,push' });
    assert.equal(again.status, 200);
    assert.equal((await http('GET', `${reg.url}/v2/team/app/manifests/v1`, { token: again.json().access_token })).status, 200);
    assert.equal((await http('GET', `${reg.url}/v2/team/app/manifests/v1`, { token: refresh_token })).status, 401, 'a refresh token is no access token');
    assert.equal((await form({ grant_type: 'password', username: DEV.user, password: 'wrong' })).status, 401);
    assert.equal((await form({ grant_type: 'refresh_token', refresh_token: 'junk' })).status, 401);
    assert.equal((await form({ grant_type: 'client_credentials' })).status, 400);
    assert.equal((await http('GET', `${reg.url}/auth/token?service=elsewhere`)).status, 403);
  });

  it('a password change ends the refresh tokens issued under the old password', async () => {
    const ROTATE = { user: 'rotate', password: 'rotate-password-1' };
    await admin(reg.url, ADMIN, 'POST', 'users', { name: ROTATE.user, password: ROTATE.password });
    const form = (f: Record<string, string>) => http('POST', `${reg.url}/auth/token`, { body: new URLSearchParams({ service: 'shoal', ...f }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const { refresh_token } = (await form({ grant_type: 'password', username: ROTATE.user, password: ROTATE.password })).json();
    assert.equal((await form({ grant_type: 'refresh_token', refresh_token })).status, 200, 'valid before the change');
    await admin(reg.url, ADMIN, 'PUT', `users/${ROTATE.user}`, { password: 'rotate-password-2' });
    const stale = await form({ grant_type: 'refresh_token', refresh_token });
    assert.equal(stale.status, 401);
    assert.equal(stale.json().errors[0].code, 'UNAUTHORIZED');
    const fresh = await form({ grant_type: 'password', username: ROTATE.user, password: 'rotate-password-2' });
    assert.equal((await form({ grant_type: 'refresh_token', refresh_token: fresh.json().refresh_token })).status, 200, 'a new login gets a working one');
  });

  it('admin API: 401 without credentials, 403 DENIED for non-admins, 400 for bad input, 404 for unknown things', async () => {
    const none = await http('GET', `${reg.url}/api/v1/users`);
    assert.equal(none.status, 401);
    assert.equal(none.json().errors[0].code, 'UNAUTHORIZED');
    const dev = await http('GET', `${reg.url}/api/v1/users`, { basic: DEV });
    assert.equal(dev.status, 403);
    assert.equal(dev.json().errors[0].code, 'DENIED');
    const bad = await http('POST', `${reg.url}/api/v1/users`, { basic: ADMIN, body: JSON.stringify({ name: 'Bad Name!', password: 'x' }) });
    assert.equal(bad.status, 400);
    const weak = await http('POST', `${reg.url}/api/v1/users`, { basic: ADMIN, body: JSON.stringify({ name: 'weak', password: 'short' }) });
    assert.equal(weak.status, 400);
    assert.match(weak.json().errors[0].message, /at least 8/);
    assert.equal((await http('PUT', `${reg.url}/api/v1/namespaces/ghost/quota`, { basic: ADMIN, body: '{"bytes":1}' })).status, 404);
    assert.equal((await http('GET', `${reg.url}/api/v1/nothing`, { basic: ADMIN })).status, 404);
  });

  it('namespace owners manage their own namespace (members, immutable tags, visibility) and nothing else', async () => {
    const OWNER = { user: 'olivia', password: 'olivia-password-1' };
    await admin(reg.url, ADMIN, 'POST', 'users', { name: OWNER.user, password: OWNER.password });
    await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: 'owned' });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/owned/members/olivia', { role: 'owner' });
    await admin(reg.url, OWNER, 'PUT', 'namespaces/owned/members/dev', { role: 'puller' });
    await admin(reg.url, OWNER, 'PUT', 'namespaces/owned/immutable', { patterns: ['v*'] });
    await admin(reg.url, OWNER, 'PUT', 'visibility', { repository: 'owned/app', visibility: 'public' });
    const refused = [
      ['PUT', 'namespaces/team/members/olivia', { role: 'owner' }],
      ['PUT', 'namespaces/owned/quota', { bytes: null }],
      ['PUT', 'visibility', { repository: 'team/app', visibility: 'public' }],
      ['GET', 'users', undefined],
      ['GET', 'audit', undefined],
    ] as const;
    for (const [method, path, body] of refused) {
      const res = await http(method, `${reg.url}/api/v1/${path}`, { basic: OWNER, body: body === undefined ? undefined : JSON.stringify(body) });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(res.json().errors[0].code, 'DENIED');
    }
    const audit = await admin(reg.url, ADMIN, 'GET', 'audit?actor=olivia');
    assert.deepEqual(audit.map((r: { action: string }) => r.action).sort(), ['ns.immutable', 'ns.member.set', 'visibility.set']);
  });

  it('CLI: user, ns, robot, policy and audit over the admin API, with SHOAL_USER/SHOAL_PASSWORD', async () => {
    const env = { SHOAL_URL: reg.url, SHOAL_USER: ADMIN.user, SHOAL_PASSWORD: ADMIN.password };
    let r = await shoal(['user', 'add', 'carol', '--password-stdin'], env, 'carol-password-1\n');
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['ns', 'create', 'cli'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['ns', 'grant', 'cli', 'carol', 'developer'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['robot', 'create', 'deployer', '--access', 'cli/*:pull', '--expires', '1h', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const robot = JSON.parse(r.stdout);
    assert.equal(robot.name, 'robot$deployer');
    r = await shoal(['policy', 'visibility', 'cli/app', 'public'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['policy', 'immutable', 'cli', 'v*', 'release-*'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['policy', 'quota', 'cli', '10GiB'], env);
    assert.equal(r.code, 0, r.stderr);
    const ns = await admin(reg.url, ADMIN, 'GET', 'namespaces/cli');
    assert.deepEqual(ns.members, [{ namespace: 'cli', principal: 'carol', role: 'developer' }]);
    assert.deepEqual(ns.immutableTags, ['v*', 'release-*']);
    assert.equal(ns.quotaBytes, 10 * 1024 ** 3);
    const token = await getToken(reg.url, { user: robot.name, password: robot.secret }, ['repository:cli/x:pull,push']);
    assert.deepEqual(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).access, [{ type: 'repository', name: 'cli/x', actions: ['pull'] }]);
    r = await shoal(['robot', 'revoke', 'deployer'], env);
    assert.equal(r.code, 0, r.stderr);
    r = await shoal(['audit', '--action', 'robot.revoke', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout)[0].target, 'robot$deployer');
    r = await shoal(['user', 'list'], { ...env, SHOAL_PASSWORD: 'wrong' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /UNAUTHORIZED/);
    r = await shoal(['ns', 'grant', 'cli', 'nobody', 'developer'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NAME_UNKNOWN: user or robot "nobody" does not exist/);
  });

  it('every tenancy command explains itself in --help', async () => {
    for (const cmd of [['user'], ['user', 'add'], ['robot', 'create'], ['ns'], ['ns', 'grant'], ['policy', 'network'], ['policy', 'immutable'], ['audit'], ['serve']]) {
      const r = await shoal([...cmd, '--help']);
      assert.equal(r.code, 0);
      assert.ok(r.stdout.length > 150, `${cmd.join(' ')} --help`);
    }
    assert.match((await shoal(['serve', '--help'])).stdout, /--auth\b[\s\S]*SHOAL_ADMIN_PASSWORD/);
  });
});
