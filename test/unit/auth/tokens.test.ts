// Keys, JWTs, scopes and the token service's grant rule (requested ∩ allowed), on a real SQLite store.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyRing } from '../../../src/auth/keys.js';
import { signJwt, verifyJwt, type TokenClaims } from '../../../src/auth/jwt.js';
import { parseScope, parseScopes, grants } from '../../../src/auth/scope.js';
import { SqliteAuthStore } from '../../../src/auth/sqlite-store.js';
import { TokenService } from '../../../src/auth/token-service.js';
import { hashPassword, hashSecret, verifyPassword } from '../../../src/auth/password.js';

const claims = (over: Partial<TokenClaims> = {}): TokenClaims => ({
  iss: 's', sub: 'alice', aud: 's', iat: 100, nbf: 99, exp: 200, jti: 'j', access: [], kind: 'user', ...over,
});

describe('signing keys', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'shoal-keys-'))));
  after(async () => rm(dir, { recursive: true, force: true }));

  it('creates a P-256 key with a private file of mode 0600 and reloads it', async () => {
    const a = new KeyRing({ dir, rotateAfterMs: 1e9, maxTokenTtlMs: 1000 });
    const priv = (await readdir(dir)).find((f) => f.endsWith('.key.pem'))!;
    assert.equal((await stat(join(dir, priv))).mode & 0o777, 0o600);
    const b = new KeyRing({ dir, rotateAfterMs: 1e9, maxTokenTtlMs: 1000 });
    assert.equal(b.kid, a.kid, 'a restart signs with the same key');
  });

  it('rotation keeps the old public key until its tokens have expired', () => {
    let now = 1_000_000;
    const ring = new KeyRing({ dir, rotateAfterMs: 60_000, maxTokenTtlMs: 5_000, now: () => now });
    const old = ring.kid;
    const token = signJwt(claims({ exp: 2000 }), ring);
    assert.equal(ring.rotate(true), true);
    assert.notEqual(ring.kid, old);
    assert.equal(typeof verifyJwt(token, ring, 's', 1500), 'object', 'old tokens still verify after rotation');
    now += 6_000;
    ring.rotate();
    assert.equal(verifyJwt(token, ring, 's', 1500), 'unknown_key', 'old public key pruned after the longest token lifetime');
  });
});

describe('JWT verification', () => {
  let dir: string;
  let ring: KeyRing;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-jwt-'));
    ring = new KeyRing({ dir, rotateAfterMs: 1e9, maxTokenTtlMs: 1000 });
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('accepts a good token and refuses expired, tampered, foreign, garbled and alg=none tokens', () => {
    const t = signJwt(claims(), ring);
    assert.equal((verifyJwt(t, ring, 's', 150) as TokenClaims).sub, 'alice');
    assert.equal(verifyJwt(t, ring, 's', 200), 'expired');
    assert.equal(verifyJwt(t, ring, 'other', 150), 'wrong_audience');
    const [h, , s] = t.split('.');
    const forged = Buffer.from(JSON.stringify(claims({ sub: 'admin', adm: true }))).toString('base64url');
    assert.equal(verifyJwt(`${h}.${forged}.${s}`, ring, 's', 150), 'bad_signature');
    assert.equal(verifyJwt('garbage', ring, 's', 150), 'malformed');
    const none = Buffer.from(JSON.stringify({ alg: 'none', kid: ring.kid })).toString('base64url');
    assert.equal(verifyJwt(`${none}.${forged}.`, ring, 's', 150), 'malformed');
  });
});

describe('scopes', () => {
  it('parses repository and catalog scopes; invalid names grant nothing', () => {
    assert.deepEqual(parseScope('repository:team/app:pull,push'), { type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
    assert.equal(parseScope('repository:team/../x:pull'), null);
    assert.equal(parseScope('repository:Team/App:pull'), null);
    assert.equal(parseScope('repository:team/app:'), null);
    assert.equal(parseScopes(['repository:a/b:pull repository:c/d:push', 'junk']).length, 2);
    assert.ok(grants([{ type: 'repository', name: 'a/b', actions: ['pull'] }], 'repository', 'a/b', 'pull'));
    assert.ok(!grants([{ type: 'repository', name: 'a/b', actions: ['pull'] }], 'repository', 'a/bc', 'pull'));
  });
});

describe('token service: granted = requested ∩ allowed', () => {
  let dir: string;
  let store: SqliteAuthStore;
  let tokens: TokenService;
  let now = 1_000_000;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ts-'));
    store = new SqliteAuthStore(join(dir, 'auth.db'));
    tokens = new TokenService({ store, keys: new KeyRing({ dir: join(dir, 'keys'), rotateAfterMs: 1e9, maxTokenTtlMs: 1e6 }), service: 's', issuer: 's', accessTtlSeconds: 300, refreshTtlSeconds: 3600, now: () => now });
    await store.putUser({ name: 'dev', passwordHash: await hashPassword('dev-password'), isAdmin: false, createdAt: 0 });
    await store.putUser({ name: 'root', passwordHash: await hashPassword('root-password'), isAdmin: true, createdAt: 0 });
    await store.createNamespace('team', 0);
    await store.bindRole({ namespace: 'team', principal: 'dev', role: 'developer' });
    await store.setVisibility('pub/app', 'public');
    await store.putRobot({ name: 'robot$ci', secretHash: hashSecret('s3cret'), permissions: [{ repository: 'team/*', actions: ['pull'] }], description: '', createdAt: 0, expiresAt: now + 1000, revokedAt: null });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies scrypt passwords', async () => {
    const h = await hashPassword('correct horse');
    assert.ok(await verifyPassword('correct horse', h));
    assert.ok(!(await verifyPassword('wrong horse', h)));
  });

  it('grants roles in the namespace, public pulls, nothing elsewhere', async () => {
    const dev = (await tokens.authenticate('dev', 'dev-password'))!;
    assert.equal(await tokens.authenticate('dev', 'nope'), null);
    const access = await tokens.grant(dev, parseScopes(['repository:team/app:pull,push,delete', 'repository:other/app:pull', 'repository:pub/app:pull,push', 'registry:catalog:*']));
    assert.deepEqual(access, [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'pub/app', actions: ['pull'] },
    ]);
    const anon = await tokens.grant({ name: 'anonymous', kind: 'anonymous', isAdmin: false }, parseScopes(['repository:pub/app:pull', 'repository:team/app:pull']));
    assert.deepEqual(anon, [{ type: 'repository', name: 'pub/app', actions: ['pull'] }]);
    const root = (await tokens.authenticate('root', 'root-password'))!;
    assert.deepEqual((await tokens.grant(root, parseScopes(['registry:catalog:*', 'repository:x/y:delete']))).map((a) => a.actions), [['*'], ['delete']]);
  });

  it('robots get their grants until they expire or are revoked', async () => {
    const ci = (await tokens.authenticate('robot$ci', 's3cret'))!;
    assert.deepEqual(await tokens.grant(ci, parseScopes(['repository:team/app:pull,push'])), [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    assert.equal(await tokens.authenticate('robot$ci', 'wrong'), null);
    now += 2000;
    assert.equal(await tokens.authenticate('robot$ci', 's3cret'), null, 'expired robot cannot log in');
    assert.equal(await tokens.subjectActive('robot$ci', 'robot'), false);
  });

  it('a remembered access token still expires', async () => {
    const dev = (await tokens.authenticate('dev', 'dev-password'))!;
    const { token } = await tokens.issue(dev, [], false);
    assert.equal(typeof tokens.verifyAccess(token), 'object');
    assert.equal(typeof tokens.verifyAccess(token), 'object', 'second check from the cache');
    now += 301_000;
    assert.equal(tokens.verifyAccess(token), 'expired');
    now -= 301_000;
  });

  it('refresh tokens are not access tokens, and redeem to their subject', async () => {
    const dev = (await tokens.authenticate('dev', 'dev-password'))!;
    const issued = await tokens.issue(dev, [], true);
    assert.ok(issued.refresh_token);
    assert.equal(tokens.verifyAccess(issued.refresh_token!), 'refresh_token_used_as_access_token');
    assert.equal((await tokens.redeemRefresh(issued.refresh_token!))?.name, 'dev');
    assert.equal(await tokens.redeemRefresh(issued.token), null, 'an access token is not a refresh token');
  });

  it('a password change invalidates the refresh tokens issued under the old password', async () => {
    await store.putUser({ name: 'pw', passwordHash: await hashPassword('old-password'), isAdmin: false, createdAt: 0 });
    const before = (await tokens.issue((await tokens.authenticate('pw', 'old-password'))!, [], true)).refresh_token!;
    assert.equal((await tokens.redeemRefresh(before))?.name, 'pw');
    const user = (await store.getUser('pw'))!;
    await store.putUser({ ...user, passwordHash: await hashPassword('new-password') });
    assert.equal(await tokens.redeemRefresh(before), null, 'issued under the old password');
    const after = (await tokens.issue((await tokens.authenticate('pw', 'new-password'))!, [], true)).refresh_token!;
    assert.equal((await tokens.redeemRefresh(after))?.name, 'pw', 'a refresh token issued under the new password works');
    await store.putUser({ ...user, isAdmin: true, passwordHash: (await store.getUser('pw'))!.passwordHash });
    assert.equal((await tokens.redeemRefresh(after))?.isAdmin, true, 'other changes to the user leave it valid');
  });
});
