// CIDR matching, the network ACL, client-IP resolution behind proxies, rate limits and tag globs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { cidrContains, isInternal, parseCidr } from '../../../src/policy/cidr.js';
import { ClientIpResolver } from '../../../src/policy/client-ip.js';
import { NetworkAcl } from '../../../src/policy/network-acl.js';
import { RateLimiter, classify, parseRatePair } from '../../../src/policy/rate-limit.js';
import { globToRegExp } from '../../../src/policy/middlewares.js';
import { RegistryError } from '../../../src/oci/errors.js';
import { LoginThrottle } from '../../../src/auth/login-throttle.js';
import type { NetworkPolicy } from '../../../src/auth/store.js';

const req = (remote: string, xff?: string) => ({ socket: { remoteAddress: remote }, headers: xff ? { 'x-forwarded-for': xff } : {} }) as unknown as IncomingMessage;

describe('CIDR', () => {
  it('matches IPv4, IPv6 and IPv4-mapped addresses', () => {
    assert.ok(cidrContains(parseCidr('127.0.0.1/32'), '127.0.0.1'));
    assert.ok(!cidrContains(parseCidr('127.0.0.1/32'), '127.0.0.2'));
    assert.ok(cidrContains(parseCidr('10.0.0.0/8'), '::ffff:10.9.8.7'));
    assert.ok(cidrContains(parseCidr('fd00::/8'), 'fd12:3456::1'));
    assert.ok(!cidrContains(parseCidr('fd00::/8'), '2001:db8::1'));
    assert.ok(cidrContains(parseCidr('0.0.0.0/0'), '8.8.8.8'));
    assert.throws(() => parseCidr('10.0.0.0/33'));
    assert.throws(() => parseCidr('nonsense'));
  });
  it('splits internal from internet addresses', () => {
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '::1', 'fd00::1']) assert.ok(isInternal(ip), ip);
    for (const ip of ['8.8.8.8', '172.32.0.1', '2001:db8::1']) assert.ok(!isInternal(ip), ip);
  });
});

describe('client IP', () => {
  it('uses X-Forwarded-For only from a trusted proxy, walking right to left', () => {
    const r = new ClientIpResolver(['10.0.0.0/8']);
    assert.equal(r.resolve(req('203.0.113.9', '1.2.3.4')), '203.0.113.9', 'untrusted peer: header ignored');
    assert.equal(r.resolve(req('10.0.0.5', '1.2.3.4, 10.0.0.7')), '1.2.3.4');
    assert.equal(r.resolve(req('10.0.0.5', '6.6.6.6, 1.2.3.4')), '1.2.3.4', 'a client-supplied left entry is not believed');
    assert.equal(new ClientIpResolver([]).resolve(req('::ffff:127.0.0.2', '9.9.9.9')), '127.0.0.2');
  });
});

describe('network ACL', () => {
  const policies = new Map<string, NetworkPolicy>();
  const acl = (defaultDeny = false) => new NetworkAcl({ load: async (s) => policies.get(s) ?? null, defaultDeny });
  const denied = async (p: Promise<void>) => assert.rejects(p, (e: RegistryError) => e.code === 'DENIED' && e.status === 403);

  it('is open without policies; default-deny admits loopback only', async () => {
    await acl().check('8.8.8.8', 'team');
    await acl(true).check('127.0.0.1');
    await denied(acl(true).check('10.0.0.1'));
    await denied(acl(true).check('8.8.8.8'));
  });
  it('applies internal and internet modes and namespace allow-lists', async () => {
    policies.set('', { scope: '', internal: 'open', internet: 'allowlist', cidrs: ['203.0.113.0/24'] });
    policies.set('team', { scope: 'team', internal: 'allowlist', internet: 'closed', cidrs: ['127.0.0.1/32', '203.0.113.0/24'] });
    const a = acl();
    await a.check('127.0.0.2');
    await a.check('203.0.113.5');
    await denied(a.check('198.51.100.1'));
    await a.check('127.0.0.1', 'team');
    await denied(a.check('127.0.0.2', 'team'));
    await denied(a.check('203.0.113.5', 'team'), );
    await a.check('127.0.0.2', 'other');
  });
});

describe('rate limits and shedding', () => {
  it('limits per IP per class with Retry-After, refills over time', () => {
    let now = 0;
    const l = new RateLimiter({ perIp: { primary: 0, secondary: 2 }, perPrincipal: { primary: 0, secondary: 0 }, maxConcurrent: 0, secondaryShare: 0.5, now: () => now });
    for (let i = 0; i < 4; i++) l.admit('secondary', '1.1.1.1', undefined); // burst = 2 s worth
    assert.throws(() => l.admit('secondary', '1.1.1.1', undefined), (e: RegistryError) => e.code === 'TOOMANYREQUESTS' && e.status === 429 && e.headers['Retry-After'] === '1');
    l.admit('secondary', '2.2.2.2', undefined);
    for (let i = 0; i < 100; i++) l.admit('primary', '1.1.1.1', undefined);
    now += 1000;
    l.admit('secondary', '1.1.1.1', undefined);
  });
  it('a rate under 0.5/s still admits one request, then one per 1/rate seconds', () => {
    let now = 0;
    const l = new RateLimiter({ perIp: { primary: 0.05, secondary: 0 }, perPrincipal: { primary: 0, secondary: 0 }, maxConcurrent: 0, secondaryShare: 0.5, now: () => now });
    l.admit('primary', '1.1.1.1', undefined);
    assert.throws(() => l.admit('primary', '1.1.1.1', undefined), (e: RegistryError) => e.headers['Retry-After'] === '20');
    now += 20_000;
    l.admit('primary', '1.1.1.1', undefined);
  });
  it('limits per account across addresses ("per token" = per account), before and after the address step', () => {
    let now = 0;
    const l = new RateLimiter({ perIp: { primary: 0, secondary: 0 }, perPrincipal: { primary: 0, secondary: 1 }, maxConcurrent: 0, secondaryShare: 0.5, now: () => now });
    l.admit('secondary', '10.0.0.1', 'robot$ci');
    l.admit('secondary', '10.0.0.2', 'robot$ci'); // burst = 2 s worth, spent from two addresses
    const tooMany = (e: RegistryError) => e.code === 'TOOMANYREQUESTS' && e.status === 429 && e.headers['Retry-After'] === '1' && /account robot\$ci/.test(e.message);
    assert.throws(() => l.admit('secondary', '10.0.0.3', 'robot$ci'), tooMany, 'a third address does not buy a fresh budget');
    assert.throws(() => l.admitPrincipal('secondary', 'robot$ci'), tooMany);
    l.admit('secondary', '10.0.0.1', 'alice'); // another account from the same address is unaffected
    l.admit('secondary', '10.0.0.1', undefined);
    l.admit('primary', '10.0.0.1', 'robot$ci'); // pulls have their own (here unlimited) bucket
    now += 1000;
    l.admit('secondary', '10.0.0.3', 'robot$ci');
  });
  it('a refused per-account step gives its concurrency slot back', () => {
    const l = new RateLimiter({ perIp: { primary: 0, secondary: 0 }, perPrincipal: { primary: 0, secondary: 0.5 }, maxConcurrent: 2, secondaryShare: 0.5, now: () => 0 });
    l.admit('secondary', 'a', 'bob')();
    assert.throws(() => l.admit('secondary', 'a', 'bob'), /account bob/);
    l.admit('secondary', 'a', 'carol'); // the slot the refused request took was released
  });
  it('sheds secondary work at its share of the concurrency budget while pulls still fit', () => {
    const l = new RateLimiter({ perIp: { primary: 0, secondary: 0 }, perPrincipal: { primary: 0, secondary: 0 }, maxConcurrent: 4, secondaryShare: 0.5, now: () => 0 });
    const r1 = l.admit('secondary', 'a', undefined);
    l.admit('secondary', 'a', undefined);
    assert.throws(() => l.admit('secondary', 'a', undefined), (e: RegistryError) => e.code === 'TOOMANYREQUESTS' && e.status === 429 && e.headers['Retry-After'] === '1' && /concurrency/.test(e.message));
    assert.ok(l.overloaded);
    l.admit('primary', 'a', undefined);
    l.admit('primary', 'a', undefined);
    assert.throws(() => l.admit('primary', 'a', undefined), /concurrency/);
    r1();
    r1();
    l.admit('primary', 'a', undefined);
    assert.deepEqual(l.rejected, { primary: 1, secondary: 1 });
  });
  it('classifies the pull path and parses rate pairs', () => {
    assert.equal(classify('manifest', 'GET'), 'primary');
    assert.equal(classify('blob', 'HEAD'), 'primary');
    assert.equal(classify('manifest', 'PUT'), 'secondary');
    assert.equal(classify('catalog', 'GET'), 'secondary');
    assert.deepEqual(parseRatePair('1000,20'), { primary: 1000, secondary: 20 });
    assert.throws(() => parseRatePair('fast'));
  });
});

describe('tag globs', () => {
  it('anchors and escapes', () => {
    assert.ok(globToRegExp('v*').test('v1.2'));
    assert.ok(!globToRegExp('v*').test('latest-v1'));
    assert.ok(globToRegExp('release-?').test('release-1'));
    assert.ok(!globToRegExp('1.0').test('1x0'));
  });
});

describe('login throttle', () => {
  it('locks out an address or an account after repeated failures, until the window passes', () => {
    let now = 0;
    const t = new LoginThrottle(3, 60_000, () => now);
    for (let i = 0; i < 3; i++) {
      t.check('1.1.1.1', 'alice');
      t.failed('1.1.1.1', 'alice');
    }
    assert.throws(() => t.check('1.1.1.1', 'bob'), (e: RegistryError) => e.code === 'TOOMANYREQUESTS' && e.headers['Retry-After'] === '60');
    assert.throws(() => t.check('2.2.2.2', 'alice'), /too many failed logins/, 'the account is locked from elsewhere too');
    t.check('2.2.2.2', 'bob');
    now += 60_000;
    t.check('1.1.1.1', 'alice');
  });
});
