// Instance network policy on a real process: default-deny admits loopback only; X-Forwarded-For
// counts only from a configured trusted proxy; internal and internet addresses get separate rules.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startShoal, type RunningShoal } from '../support/server.js';
import { admin, http } from '../support/auth.js';

const ADMIN = { user: 'admin', password: 'admin-password-1' };

describe('network access policy', () => {
  let reg: RunningShoal;
  before(async () => {
    reg = await startShoal({ args: ['--network-default-deny', '--trusted-proxy', '127.0.0.1/32'], env: { SHOAL_ADMIN_PASSWORD: ADMIN.password } });
  });
  after(async () => reg?.stop());

  const status = async (opts: { from?: string; xff?: string }, path = '/v2/') => {
    const res = await http('GET', `${reg.url}${path}`, { localAddress: opts.from, headers: opts.xff ? { 'x-forwarded-for': opts.xff } : {} });
    if (res.status === 403) assert.equal(res.json().errors[0].code, 'DENIED');
    return res.status;
  };

  it('default-deny: loopback is admitted, forwarded internal and internet clients are not', async () => {
    assert.equal(await status({ from: '127.0.0.1' }), 200);
    assert.equal(await status({ from: '127.0.0.2' }), 200);
    assert.equal(await status({ from: '127.0.0.1', xff: '203.0.113.7' }), 403, 'trusted proxy forwards an internet client');
    assert.equal(await status({ from: '127.0.0.1', xff: '10.1.2.3' }), 403, 'trusted proxy forwards an internal, non-loopback client');
    assert.equal(await status({ from: '127.0.0.1', xff: '203.0.113.7' }, '/auth/token?service=shoal'), 403, 'the token endpoint is covered');
  });

  it('a stored instance policy: internal open, internet allow-listed; XFF from an untrusted peer is ignored', async () => {
    await admin(reg.url, ADMIN, 'PUT', 'network/_instance', { internal: 'allowlist', internet: 'allowlist', cidrs: ['127.0.0.1/32', '203.0.113.0/24'] });
    // The policy cache lives 5 s; a change made through this process's API invalidates it at once.
    assert.equal(await status({ from: '127.0.0.1', xff: '203.0.113.7' }), 200, 'allow-listed internet client via the trusted proxy');
    assert.equal(await status({ from: '127.0.0.1', xff: '198.51.100.1' }), 403, 'other internet client');
    assert.equal(await status({ from: '127.0.0.2' }), 403, '127.0.0.2 is not in the internal allow-list');
    assert.equal(await status({ from: '127.0.0.2', xff: '127.0.0.1' }), 403, 'an untrusted peer cannot claim an allowed address');
    assert.equal(await status({ from: '127.0.0.1', xff: '127.0.0.2, 203.0.113.9' }), 200, 'rightmost untrusted hop is the client');
  });
});
