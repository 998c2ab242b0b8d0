// Every /v2 route, tried by a real `shoal serve --auth` process with credentials that must not
// work: no token, garbled and forged tokens, an expired token, a token for another repository, a
// pull token used to push, an expired robot, a revoked robot, a disallowed source address and
// path tricks. Each is refused with the spec's error, and afterwards nothing was written.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { sign } from 'node:crypto';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { startShoal, type RunningShoal } from '../support/server.js';
import { buildBusyboxImage, sha256 } from '../support/image.js';
import { admin, getToken, http, pushWithToken, type HttpAnswer } from '../support/auth.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const ALICE = { user: 'alice', password: 'alice-password-1' };
const BOB = { user: 'bob', password: 'bob-password-1' };
const REPO = 'team/app';
const OTHER = 'other/app';
const LOCKED = 'locked/app';

interface RouteCase {
  name: string;
  method: string;
  path: (repo: string) => string;
  body?: Buffer;
  headers?: Record<string, string>;
  /** Needs push or delete (a pull token must be refused). */
  write: boolean;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...walk(join(dir, e.name)));
    else out.push(join(dir, e.name));
  }
  return out.sort();
}

describe('auth negative suite: every route refuses bad credentials and writes nothing', () => {
  let reg: RunningShoal;
  const image = buildBusyboxImage({ hello: 'negative suite\n' });
  const intruder = buildBusyboxImage({ hello: 'must never be stored\n' });
  const newBlob = Buffer.from('a blob that must not be written');
  const newDigest = sha256(newBlob);
  let uploadPath = '';
  /** An open upload session in the address-restricted namespace. */
  let lockedUploadPath = '';
  let storageBefore: string[] = [];
  const tokens: Record<string, string> = {};

  const sessionOf = (repo: string) => (repo === LOCKED ? lockedUploadPath : uploadPath);
  const routes = (): RouteCase[] => [
    { name: 'catalog', method: 'GET', path: () => '/v2/_catalog', write: false },
    { name: 'tags.list', method: 'GET', path: (r) => `/v2/${r}/tags/list`, write: false },
    { name: 'manifest GET', method: 'GET', path: (r) => `/v2/${r}/manifests/v1`, write: false },
    { name: 'manifest HEAD', method: 'HEAD', path: (r) => `/v2/${r}/manifests/v1`, write: false },
    { name: 'manifest PUT', method: 'PUT', path: (r) => `/v2/${r}/manifests/v1`, body: intruder.manifest.data, headers: { 'content-type': intruder.manifest.mediaType }, write: true },
    { name: 'manifest DELETE', method: 'DELETE', path: (r) => `/v2/${r}/manifests/v1`, write: true },
    { name: 'blob GET', method: 'GET', path: (r) => `/v2/${r}/blobs/${image.config.digest}`, write: false },
    { name: 'blob HEAD', method: 'HEAD', path: (r) => `/v2/${r}/blobs/${image.config.digest}`, write: false },
    { name: 'blob DELETE', method: 'DELETE', path: (r) => `/v2/${r}/blobs/${image.config.digest}`, write: true },
    { name: 'upload.start POST', method: 'POST', path: (r) => `/v2/${r}/blobs/uploads/?digest=${newDigest}`, body: newBlob, headers: { 'content-type': 'application/octet-stream' }, write: true },
    { name: 'upload.start mount', method: 'POST', path: (r) => `/v2/${r}/blobs/uploads/?mount=${image.config.digest}&from=${REPO}`, write: true },
    { name: 'upload PATCH', method: 'PATCH', path: (r) => sessionOf(r), body: newBlob, headers: { 'content-type': 'application/octet-stream' }, write: true },
    { name: 'upload PUT', method: 'PUT', path: (r) => `${sessionOf(r)}?digest=${newDigest}`, write: true },
    { name: 'upload GET', method: 'GET', path: (r) => sessionOf(r), write: true },
    { name: 'upload DELETE', method: 'DELETE', path: (r) => sessionOf(r), write: true },
    { name: 'referrers', method: 'GET', path: (r) => `/v2/${r}/referrers/${image.manifest.digest}`, write: false },
  ];

  const call = (rc: RouteCase, repo: string, token?: string, localAddress?: string) =>
    http(rc.method, `${reg.url}${rc.path(repo)}`, { token, body: rc.body, headers: rc.headers, localAddress });

  /** `bearer`: a /v2 route, whose 401 must carry the token challenge (the realm and admin API have none). */
  function assertRefused(res: HttpAnswer, status: number, code: string, what: string, bearer = !what.startsWith('token endpoint')): void {
    assert.equal(res.status, status, `${what}: status (body ${res.body.toString().slice(0, 300)})`);
    if (status === 401 && bearer) assert.match(String(res.headers['www-authenticate']), /^Bearer realm="http:\/\/[^"]+\/auth\/token",service="shoal"/, `${what}: challenge`);
    if (res.body.length > 0) assert.equal(res.json().errors[0].code, code, `${what}: error code`);
  }

  /** A JWT signed with the registry's own current key (read from its data dir), with chosen claims. */
  function craftToken(claims: Record<string, unknown>): string {
    const dir = join(reg.dataDir, 'auth', 'keys');
    const keyFile = readdirSync(dir).find((f) => f.endsWith('.key.pem'))!;
    const kid = keyFile.slice(0, -'.key.pem'.length);
    const head = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid })).toString('base64url');
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const sig = sign('sha256', Buffer.from(`${head}.${body}`), { key: createPrivateKey(readFileSync(join(dir, keyFile))), dsaEncoding: 'ieee-p1363' });
    return `${head}.${body}.${sig.toString('base64url')}`;
  }

  before(async () => {
    reg = await startShoal({ args: ['--auth'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
    for (const ns of ['team', 'other', 'locked']) await admin(reg.url, ADMIN, 'POST', 'namespaces', { name: ns });
    for (const u of [ALICE, BOB]) await admin(reg.url, ADMIN, 'POST', 'users', { name: u.user, password: u.password });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/alice', { role: 'developer' });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/other/members/alice', { role: 'maintainer' });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/locked/members/alice', { role: 'maintainer' });
    await admin(reg.url, ADMIN, 'PUT', 'namespaces/team/members/bob', { role: 'puller' });
    await admin(reg.url, ADMIN, 'PUT', 'network/locked', { internal: 'allowlist', internet: 'closed', cidrs: ['127.0.0.1/32'] });

    const adminToken = await getToken(reg.url, ADMIN, [REPO, OTHER, LOCKED].map((r) => `repository:${r}:pull,push,delete`));
    for (const r of [REPO, OTHER, LOCKED]) await pushWithToken(reg.url, r, 'v1', image, adminToken);
    const post = await http('POST', `${reg.url}/v2/${REPO}/blobs/uploads/`, { token: adminToken });
    uploadPath = String(post.headers.location);
    lockedUploadPath = String((await http('POST', `${reg.url}/v2/${LOCKED}/blobs/uploads/`, { token: adminToken })).headers.location);
    assert.ok(lockedUploadPath.startsWith(`/v2/${LOCKED}/blobs/uploads/`), lockedUploadPath);

    const robotExpiring = await admin(reg.url, ADMIN, 'POST', 'robots', { name: 'shortlived', permissions: [{ repository: 'team/*', actions: ['pull', 'push', 'delete'] }], expiresInSeconds: 1 });
    const robotRevoked = await admin(reg.url, ADMIN, 'POST', 'robots', { name: 'revoked', permissions: [{ repository: 'team/*', actions: ['pull', 'push', 'delete'] }] });
    const all = (r: string) => `repository:${r}:pull,push,delete`;
    tokens.expiringRobot = await getToken(reg.url, { user: robotExpiring.name, password: robotExpiring.secret }, [all(REPO)]);
    tokens.revokedRobot = await getToken(reg.url, { user: robotRevoked.name, password: robotRevoked.secret }, [all(REPO)]);
    tokens.robotCreds = JSON.stringify([robotExpiring, robotRevoked].map((r) => ({ user: r.name, password: r.secret })));
    await admin(reg.url, ADMIN, 'POST', `robots/${encodeURIComponent(robotRevoked.name)}/revoke`);
    tokens.otherRepo = await getToken(reg.url, ALICE, [all(OTHER), 'registry:catalog:*']);
    tokens.pullOnly = await getToken(reg.url, BOB, [all(REPO)]);
    tokens.alice = await getToken(reg.url, ALICE, [all(REPO), all(LOCKED)]);
    tokens.admin = await getToken(reg.url, ADMIN, [all(REPO), 'registry:catalog:*']);
    const now = Math.floor(Date.now() / 1000);
    tokens.expired = craftToken({ iss: 'shoal', sub: 'admin', aud: 'shoal', iat: now - 600, nbf: now - 600, exp: now - 300, jti: 'x', kind: 'user', adm: true, access: [{ type: 'repository', name: REPO, actions: ['pull', 'push', 'delete'] }, { type: 'registry', name: 'catalog', actions: ['*'] }] });
    const good = tokens.admin.split('.');
    const forgedClaims = Buffer.from(JSON.stringify({ iss: 'shoal', sub: 'admin', aud: 'shoal', iat: now, nbf: now, exp: now + 300, jti: 'y', kind: 'user', adm: true, access: [{ type: 'repository', name: REPO, actions: ['pull', 'push', 'delete'] }] })).toString('base64url');
    tokens.forged = `${good[0]}.${forgedClaims}.${good[2]}`;
    // Let the short-lived robot expire (its token was issued while it was valid).
    await new Promise((r) => setTimeout(r, 2_100));
    storageBefore = walk(join(reg.dataDir, 'storage'));
  });

  after(async () => reg?.stop());

  it('no token: 401 UNAUTHORIZED with a Bearer challenge naming the needed scope', async () => {
    const base = await http('GET', `${reg.url}/v2/`);
    assertRefused(base, 401, 'UNAUTHORIZED', 'base');
    for (const rc of routes()) {
      const res = await call(rc, REPO);
      assertRefused(res, 401, 'UNAUTHORIZED', rc.name);
      if (rc.name !== 'catalog') assert.match(String(res.headers['www-authenticate']), new RegExp(`scope="repository:${REPO}:`), rc.name);
    }
  });

  it('Basic credentials on /v2 are not accepted (token flow only)', async () => {
    const res = await http('GET', `${reg.url}/v2/${REPO}/manifests/v1`, { basic: ADMIN });
    assertRefused(res, 401, 'UNAUTHORIZED', 'basic on /v2');
  });

  for (const [label, key] of [['garbled token', 'garbled'], ['forged (re-signed claims) token', 'forged'], ['expired token', 'expired']] as const) {
    it(`${label}: 401 UNAUTHORIZED, error="invalid_token"`, async () => {
      const token = key === 'garbled' ? 'not.a.jwt' : tokens[key]!;
      assertRefused(await http('GET', `${reg.url}/v2/`, { token }), 401, 'UNAUTHORIZED', `${label} base`);
      for (const rc of routes()) {
        const res = await call(rc, REPO, token);
        assertRefused(res, 401, 'UNAUTHORIZED', `${label} ${rc.name}`);
        assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/, `${label} ${rc.name}`);
      }
    });
  }

  it('a token for repository A used on B: 401 insufficient_scope', async () => {
    for (const rc of routes()) {
      const res = await call(rc, REPO, tokens.otherRepo);
      if (rc.name === 'catalog') continue; // alice asked for the catalog but is no admin: covered below
      assertRefused(res, 401, 'UNAUTHORIZED', `A-on-B ${rc.name}`);
      assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope"/);
    }
    assertRefused(await http('GET', `${reg.url}/v2/_catalog`, { token: tokens.otherRepo }), 401, 'UNAUTHORIZED', 'catalog for a non-admin');
  });

  it('a pull-scope token used to push or delete: 401 insufficient_scope; pulls work', async () => {
    for (const rc of routes()) {
      const res = await call(rc, REPO, tokens.pullOnly);
      if (rc.name === 'catalog') continue;
      if (rc.write) {
        assertRefused(res, 401, 'UNAUTHORIZED', `pull token ${rc.name}`);
        assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope"/);
      } else {
        assert.ok(res.status === 200, `pull token may ${rc.name}: got ${res.status}`);
      }
    }
  });

  it('a robot past its expiry, and a revoked robot: tokens refused, credentials refused', async () => {
    for (const key of ['expiringRobot', 'revokedRobot']) {
      for (const rc of routes()) assertRefused(await call(rc, REPO, tokens[key]), 401, 'UNAUTHORIZED', `${key} ${rc.name}`);
    }
    for (const creds of JSON.parse(tokens.robotCreds!) as Array<{ user: string; password: string }>) {
      const res = await http('GET', `${reg.url}/auth/token?service=shoal&scope=repository:${REPO}:pull`, { basic: creds });
      assertRefused(res, 401, 'UNAUTHORIZED', `token endpoint for ${creds.user}`);
    }
  });

  it('a disallowed source address (127.0.0.2 where only 127.0.0.1 may reach the namespace): 403 DENIED with a valid token, a bad one or none', async () => {
    for (const rc of routes()) {
      if (rc.name === 'catalog') continue; // not in the namespace
      for (const [label, token] of [['valid token', tokens.alice], ['no token', undefined], ['forged token', tokens.forged]] as const) {
        const res = await call(rc, LOCKED, token, '127.0.0.2');
        assertRefused(res, 403, 'DENIED', `from 127.0.0.2, ${label}, ${rc.name}`);
      }
    }
    const allowed = await http('GET', `${reg.url}/v2/${LOCKED}/manifests/v1`, { token: tokens.alice, localAddress: '127.0.0.1' });
    assert.equal(allowed.status, 200, 'the same token from 127.0.0.1 works');
  });

  it('the token endpoint refuses forged, expired and misused refresh tokens; the admin API refuses bad bearer tokens and writes nothing', async () => {
    const refresh = (token: string) =>
      http('POST', `${reg.url}/auth/token`, { body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, service: 'shoal', scope: `repository:${REPO}:pull` }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const now = Math.floor(Date.now() / 1000);
    const refreshClaims = { iss: 'shoal', sub: 'admin', aud: 'shoal', iat: now, nbf: now - 1, exp: now + 3600, jti: 'r', kind: 'user', adm: true, access: [], use: 'refresh' };
    const good = tokens.admin!.split('.');
    const cases: Array<[string, string]> = [
      ['expired refresh token', craftToken({ ...refreshClaims, iat: now - 7200, nbf: now - 7200, exp: now - 60 })],
      ['forged refresh token', `${good[0]}.${Buffer.from(JSON.stringify(refreshClaims)).toString('base64url')}.${good[2]}`],
      ['access token as refresh token', tokens.admin!],
      ['expired access token', tokens.expired!],
      ['garbled', 'not.a.jwt'],
    ];
    for (const [label, token] of cases) assertRefused(await refresh(token), 401, 'UNAUTHORIZED', `token endpoint: ${label}`);
    for (const [label, token] of [['forged', tokens.forged!], ['expired', tokens.expired!], ['garbled', 'not.a.jwt']] as const) {
      const list = await http('GET', `${reg.url}/api/v1/users`, { token });
      assertRefused(list, 401, 'UNAUTHORIZED', `admin API GET, ${label} token`, false);
      const create = await http('POST', `${reg.url}/api/v1/users`, { token, body: JSON.stringify({ name: `intruder-${label}`, password: 'intruder-password-1', admin: true }), headers: { 'content-type': 'application/json' } });
      assertRefused(create, 401, 'UNAUTHORIZED', `admin API POST, ${label} token`, false);
    }
    const users = (await admin(reg.url, ADMIN, 'GET', 'users')) as Array<{ name: string }>;
    assert.deepEqual(users.map((u) => u.name).filter((n) => n.startsWith('intruder')), [], 'no user was created');
  });

  it('path tricks in repository names: NAME_INVALID or NAME_UNKNOWN, never another repository', async () => {
    const tricks = [
      `/v2/team/../other/app/manifests/v1`,
      `/v2/team/app/../../other/app/manifests/v1`,
      `/v2/team%2fapp/manifests/v1`,
      `/v2/team/%2e%2e/other/app/manifests/v1`,
      `/v2//team/app/manifests/v1`,
      `/v2/Team/App/manifests/v1`,
      `/v2/team/app/./manifests/v1`,
    ];
    for (const p of tricks) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const res = await http(method, `${reg.url}${p}`, { token: tokens.admin, body: method === 'PUT' ? intruder.manifest.data : undefined, headers: method === 'PUT' ? { 'content-type': intruder.manifest.mediaType } : {} });
        assert.ok([400, 404].includes(res.status), `${method} ${p}: ${res.status}`);
        assert.ok(['NAME_INVALID', 'NAME_UNKNOWN'].includes(res.json().errors[0].code), `${method} ${p}: ${res.body}`);
      }
    }
    const upload = await http('POST', `${reg.url}/v2/team/../other/app/blobs/uploads/?digest=${newDigest}`, { token: tokens.admin, body: newBlob });
    assert.equal(upload.status, 400);
    // The same tricks on blob and tag-list routes: never another repository's blob or tags.
    const tail = [`blobs/${image.config.digest}`, 'tags/list'];
    for (const t of tail) {
      for (const p of tricks.map((x) => x.replace(/manifests\/v1$/, t))) {
        for (const method of t.startsWith('blobs') ? ['GET', 'HEAD', 'DELETE'] : ['GET']) {
          const res = await http(method, `${reg.url}${p}`, { token: tokens.admin });
          assert.ok([400, 404].includes(res.status), `${method} ${p}: ${res.status}`);
          if (method !== 'HEAD') assert.ok(['NAME_INVALID', 'NAME_UNKNOWN'].includes(res.json().errors[0].code), `${method} ${p}: ${res.body}`);
        }
      }
    }
  });

  it('afterwards nothing was written: same storage files, same catalog and tags, the upload session untouched', async () => {
    assert.deepEqual(walk(join(reg.dataDir, 'storage')).filter((f) => !f.includes('/uploads/')), storageBefore.filter((f) => !f.includes('/uploads/')));
    const catalog = await http('GET', `${reg.url}/v2/_catalog`, { token: tokens.admin });
    assert.deepEqual(catalog.json().repositories, [LOCKED, OTHER, REPO]);
    const tags = await http('GET', `${reg.url}/v2/${REPO}/tags/list`, { token: tokens.admin });
    assert.deepEqual(tags.json().tags, ['v1']);
    const m = await http('GET', `${reg.url}/v2/${REPO}/manifests/v1`, { token: tokens.admin });
    assert.equal(sha256(m.body), image.manifest.digest, 'v1 still names the original image');
    const blob = await http('HEAD', `${reg.url}/v2/${REPO}/blobs/${newDigest}`, { token: tokens.admin });
    assert.equal(blob.status, 404, 'the refused blob never arrived');
    const session = await http('GET', `${reg.url}${uploadPath}`, { token: tokens.admin });
    assert.equal(session.status, 204, 'the upload session was not cancelled or written to');
    assert.equal(session.headers.range, '0-0');
    const locked = await http('GET', `${reg.url}${lockedUploadPath}`, { token: tokens.alice, localAddress: '127.0.0.1' });
    assert.equal(locked.status, 204, 'the upload session of the locked namespace was not cancelled or written to from 127.0.0.2');
    assert.equal(locked.headers.range, '0-0');
  });
});
