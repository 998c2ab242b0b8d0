// Real clients against `shoal serve --auth`: skopeo (--creds / --src-creds / --dest-creds),
// podman (login, push, pull), containerd (ctr pull --user) — each allowed and refused as the
// roles say, and anonymous pulls of a public repository.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildBusyboxImage, writeOciLayout } from '../support/image.js';
import { makeSkopeo } from '../support/skopeo.js';
import { startShoal, type RunningShoal } from '../support/server.js';
import { admin, getToken, http, pushWithToken } from '../support/auth.js';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { assertPrerequisites, isolateContainersPaths, killLeftovers, once, removeDir, run, skipUnless, tempDir, which, withServerLog, type RunOptions } from '../support/tools.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const DEV = { user: 'dev', password: 'dev-password-1' };
const VIEWER = { user: 'viewer', password: 'viewer-password-1' };
const creds = (c: { user: string; password: string }) => `${c.user}:${c.password}`;

describe('real clients with token auth', { skip: skipUnless(['skopeo']) }, () => {
  let reg: RunningShoal | undefined;
  let work = '';
  const img = buildBusyboxImage({ hello: 'hello from the auth e2e test\n' });
  let robot = { user: '', password: '' };
  const logged = (fn: () => Promise<void>) =>
    withServerLog(
      () => reg?.output,
      async () => {
        await setup();
        await fn();
      },
    );

  const setup = once(async () => {
    assertPrerequisites(['skopeo']);
    work = await tempDir('auth-e2e');
    await writeOciLayout(join(work, 'layout'), [{ tag: 'app', target: img }]);
    reg = await startShoal({ args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
    for (const ns of ['team', 'other', 'pub']) await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: ns });
    for (const u of [DEV, VIEWER]) await admin(reg.url, ADMIN, 'POST', 'users', { name: u.user, password: u.password });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/dev', { role: 'developer' });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/viewer', { role: 'puller' });
    await admin(reg.url, ADMIN, 'PUT', 'visibility', { repository: 'pub/app', visibility: 'public' });
    const r = await admin(reg.url, ADMIN, 'POST', 'robots', { name: 'nodes', permissions: [{ repository: 'team/*', actions: ['pull'] }], expiresInSeconds: 3600 });
    robot = { user: r.name, password: r.secret };
    const token = await getToken(reg.url, ADMIN, ['team/app', 'other/app', 'pub/app'].map((x) => `repository:${x}:pull,push`));
    for (const repo of ['team/app', 'other/app', 'pub/app']) await pushWithToken(reg.url, repo, '1', img, token);
  });

  after(async () => {
    killLeftovers();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  const repoExists = async (repo: string) => {
    const token = await getToken(reg!.url, ADMIN, [`repository:${repo}:pull`]);
    return (await http('GET', `${reg!.url}/v2/${repo}/tags/list`, { token })).status === 200;
  };

  test(
    'skopeo --creds: a puller inspects its namespace, not another; wrong password and no creds are refused',
    logged(async () => {
      const s = await makeSkopeo(work);
      const ok = await s.run(['inspect', '--tls-verify=false', '--creds', creds(VIEWER), `docker://${reg!.host}/team/app:1`]);
      assert.equal(JSON.parse(ok.stdout).Digest, img.manifest.digest);
      for (const [args, what] of [
        [['--creds', creds(VIEWER), `docker://${reg!.host}/other/app:1`], 'another namespace'],
        [['--creds', `${VIEWER.user}:wrong-password`, `docker://${reg!.host}/team/app:1`], 'a wrong password'],
        [['--no-creds', `docker://${reg!.host}/team/app:1`], 'no credentials on a private repository'],
      ] as const) {
        const res = await s.run(['inspect', '--tls-verify=false', ...args], { allowFail: true });
        assert.notEqual(res.code, 0, `skopeo inspect with ${what} must fail`);
        assert.match(res.stderr, /unauthorized|authentication required|denied|401/i, `${what}: ${res.stderr}`);
      }
    }),
  );

  test(
    'skopeo anonymous pull of a public repository works',
    logged(async () => {
      const s = await makeSkopeo(work);
      const res = await s.run(['copy', '--src-tls-verify=false', '--src-no-creds', `docker://${reg!.host}/pub/app:1`, `oci:${join(work, 'anon')}:app`]);
      assert.equal(res.code, 0);
    }),
  );

  test(
    'skopeo copy --dest-creds: a puller cannot push, a developer can; --src-creds pulls back',
    logged(async () => {
      const s = await makeSkopeo(work);
      const denied = await s.run(['copy', '--dest-tls-verify=false', '--dest-creds', creds(VIEWER), `oci:${join(work, 'layout')}:app`, `docker://${reg!.host}/team/by-viewer:1`], { allowFail: true });
      assert.notEqual(denied.code, 0, 'a puller may not push');
      assert.equal(await repoExists('team/by-viewer'), false, 'nothing written');
      await s.run(['copy', '--dest-tls-verify=false', '--dest-creds', creds(DEV), `oci:${join(work, 'layout')}:app`, `docker://${reg!.host}/team/by-dev:1`]);
      assert.equal(await repoExists('team/by-dev'), true);
      const back = await makeSkopeo(work);
      await back.run(['copy', '--src-tls-verify=false', '--src-creds', creds(VIEWER), `docker://${reg!.host}/team/by-dev:1`, `oci:${join(work, 'back')}:app`]);
      const outside = await s.run(['copy', '--dest-tls-verify=false', '--dest-creds', creds(DEV), `oci:${join(work, 'layout')}:app`, `docker://${reg!.host}/other/by-dev:1`], { allowFail: true });
      assert.notEqual(outside.code, 0, 'a developer of team may not push to other');
      assert.equal(await repoExists('other/by-dev'), false);
    }),
  );

  describe('podman login / push / pull', { skip: skipUnless(['podman', 'runc', 'conmon'], { root: true }) }, () => {
    type Iso = Awaited<ReturnType<typeof isolateContainersPaths>>;
    let iso: Iso | undefined;
    let podman: (args: string[], opts?: RunOptions) => ReturnType<typeof run>;
    const podmanSetup = once(async () => {
      await setup();
      const dir = join(work, 'podman');
      iso = await isolateContainersPaths(dir);
      const bin = which('podman')!;
      const global = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--tmpdir', join(dir, 'tmp')];
      podman = (args, opts = {}) => {
        const [cmd, argv] = iso!.prefix(bin, [...global, ...args]);
        return run(cmd, argv, { timeoutMs: 90_000, ...opts, env: { TMPDIR: '/var/tmp', XDG_RUNTIME_DIR: join(dir, 'xdg'), REGISTRY_AUTH_FILE: join(dir, 'auth.json'), ...opts.env } });
      };
    });
    after(async () => iso?.cleanup());

    test(
      'podman: bad login refused; puller logs in and pulls but cannot push; developer pushes',
      logged(async () => {
        await podmanSetup();
        const host = reg!.host;
        const bad = await podman(['login', '--tls-verify=false', '-u', VIEWER.user, '-p', 'wrong-password', host], { allowFail: true });
        assert.notEqual(bad.code, 0, 'login with a wrong password fails');
        await podman(['login', '--tls-verify=false', '-u', VIEWER.user, '-p', VIEWER.password, host]);
        await podman(['pull', '--tls-verify=false', `${host}/team/app:1`]);
        const denied = await podman(['pull', '--tls-verify=false', `${host}/other/app:1`], { allowFail: true });
        assert.notEqual(denied.code, 0, 'a puller of team cannot pull from other');
        await podman(['tag', `${host}/team/app:1`, `${host}/team/pushed-by-podman:1`]);
        const push = await podman(['push', '--tls-verify=false', `${host}/team/pushed-by-podman:1`], { allowFail: true });
        assert.notEqual(push.code, 0, 'a puller cannot push');
        assert.equal(await repoExists('team/pushed-by-podman'), false);
        await podman(['logout', host]);
        await podman(['login', '--tls-verify=false', '-u', DEV.user, '-p', DEV.password, host]);
        await podman(['push', '--tls-verify=false', `${host}/team/pushed-by-podman:1`]);
        assert.equal(await repoExists('team/pushed-by-podman'), true);
      }),
    );
  });

  describe('containerd pulls with credentials', { skip: skipUnless(['containerd', 'ctr'], { root: true }) }, () => {
    let ctrd: Containerd | undefined;
    after(async () => ctrd?.stop());

    test(
      'ctr pull --user: a robot with pull on team/* pulls; without credentials, and outside its grant, it is refused',
      logged(async () => {
        await setup();
        ctrd = await startContainerd();
        const host = reg!.host;
        const pull = (ref: string, user?: string) => ctrd!.ctr(['images', 'pull', '--plain-http', ...(user ? ['--user', user] : []), ref], { allowFail: true, timeoutMs: 60_000 });
        const ok = await pull(`${host}/team/app:1`, creds(robot));
        assert.equal(ok.code, 0, ok.stderr);
        const list = await ctrd.ctr(['images', 'ls', '-q']);
        assert.match(list.stdout, new RegExp(`${host}/team/app:1`));
        const anon = await pull(`${host}/team/app:1`);
        assert.notEqual(anon.code, 0, 'no credentials: refused');
        const outside = await pull(`${host}/other/app:1`, creds(robot));
        assert.notEqual(outside.code, 0, 'outside the robot grant: refused');
        const pub = await pull(`${host}/pub/app:1`);
        assert.equal(pub.code, 0, `anonymous pull of a public repository: ${pub.stderr}`);
      }),
    );
  });

  test(
    'the audit trail names who pushed, pulled and logged in, and from where',
    logged(async () => {
      const rows = (await admin(reg!.url, ADMIN, 'GET', 'audit?limit=1000')) as Array<{ actor: string; action: string; target: string; clientIp: string }>;
      assert.ok(rows.some((r) => r.actor === 'dev' && r.action === 'push' && r.target.startsWith('team/by-dev@')), 'skopeo push by dev');
      assert.ok(rows.some((r) => r.actor === 'viewer' && r.action === 'pull' && r.target === 'team/app:1' && r.clientIp === '127.0.0.1'), 'pull by viewer');
      assert.ok(rows.some((r) => r.actor === 'viewer' && r.action === 'login' && r.clientIp === '127.0.0.1'), 'login by viewer');
      assert.ok(rows.some((r) => r.actor === 'viewer' && r.action === 'login' && (r as { outcome?: string }).outcome === 'UNAUTHORIZED'), 'the failed login is kept');
      assert.ok(rows.some((r) => r.action === 'ns.member.set' && r.actor === 'admin' && r.target === 'team'), 'permission change by admin');
    }),
  );
});
