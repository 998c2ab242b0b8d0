// Bad input and failure: disconnects mid-upload, truncated bodies, oversized manifests, path
// tricks, random requests — each gets the spec's error, the server stays up, nothing half-written
// becomes visible. Also: an upload resumes across a registry restart, and `shoal gc` works on a live registry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const run = promisify(execFile);

async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: Array<{ code: string }> };
  return body.errors?.[0]?.code;
}

/** Sends raw bytes over a socket and hangs up without finishing the request. */
async function sendAndHangUp(host: string, head: string, body: Buffer): Promise<void> {
  const [h, p] = host.split(':');
  await new Promise<void>((resolve, reject) => {
    const sock = connect(Number(p), h!, () => {
      sock.write(head);
      sock.write(body, () => setTimeout(() => (sock.destroy(), resolve()), 100));
    });
    sock.on('error', reject);
  });
}

async function startUpload(s: RunningShoal, repo: string): Promise<string> {
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  return res.headers.get('location')!;
}

describe('robustness', () => {
  let s: RunningShoal;
  before(async () => (s = await startShoal()));
  after(async () => s.stop());

  it('a client that disconnects mid-PATCH leaves the upload at its last good offset and nothing visible', async () => {
    const loc = await startUpload(s, 'rb/cut');
    const first = randomBytes(1000);
    let res = await fetch(`${s.url}${loc}`, { method: 'PATCH', body: new Uint8Array(first), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-999' } });
    assert.equal(res.status, 202);
    const next = res.headers.get('location')!;
    await sendAndHangUp(s.host, `PATCH ${next} HTTP/1.1\r\nHost: ${s.host}\r\nContent-Type: application/octet-stream\r\nContent-Range: 1000-100999\r\nContent-Length: 100000\r\n\r\n`, randomBytes(30_000));
    await new Promise((r) => setTimeout(r, 200));
    res = await fetch(`${s.url}${next}`);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('range'), '0-999', 'rolled back to the acknowledged offset');
    const rest = randomBytes(500);
    res = await fetch(`${s.url}${next}`, { method: 'PATCH', body: new Uint8Array(rest), headers: { 'Content-Range': '1000-1499', 'Content-Type': 'application/octet-stream' } });
    assert.equal(res.status, 202);
    const whole = Buffer.concat([first, rest]);
    res = await fetch(`${s.url}${res.headers.get('location')}${res.headers.get('location')!.includes('?') ? '&' : '?'}digest=${sha(whole)}`, { method: 'PUT' });
    assert.equal(res.status, 201);
    const got = await fetch(`${s.url}/v2/rb/cut/blobs/${sha(whole)}`);
    assert.equal(sha(Buffer.from(await got.arrayBuffer())), sha(whole));
  });

  it('a single POST whose client hangs up leaves no blob behind', async () => {
    const blob = randomBytes(50_000);
    await sendAndHangUp(s.host, `POST /v2/rb/post/blobs/uploads/?digest=${sha(blob)} HTTP/1.1\r\nHost: ${s.host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n`, blob.subarray(0, 20_000));
    await new Promise((r) => setTimeout(r, 200));
    const res = await fetch(`${s.url}/v2/rb/post/blobs/${sha(blob)}`, { method: 'HEAD' });
    assert.equal(res.status, 404);
    const hex = sha(blob).slice(7);
    const stored = await readdir(join(s.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2))).catch((): string[] => []);
    assert.ok(!stored.includes(hex), 'no partial blob in storage');
  });

  it('oversized manifests get 413 SIZE_INVALID; wrong digests DIGEST_INVALID; nothing stored', async () => {
    const huge = Buffer.alloc(9 * 1024 * 1024, 0x20);
    let res = await fetch(`${s.url}/v2/rb/big/manifests/t`, { method: 'PUT', body: new Uint8Array(huge), headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 413);
    assert.equal(await errorCode(res), 'SIZE_INVALID');
    const blob = randomBytes(100);
    res = await fetch(`${s.url}/v2/rb/big/blobs/uploads/?digest=${sha(randomBytes(1))}`, { method: 'POST', body: new Uint8Array(blob) });
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), 'DIGEST_INVALID');
    res = await fetch(`${s.url}/v2/rb/big/tags/list`);
    assert.equal(res.status, 404);
  });

  it('path tricks are refused with NAME_INVALID, never 500', async () => {
    for (const path of ['/v2/a/../b/tags/list', '/v2/a/%2e%2e/b/tags/list', '/v2/a%2Fb/tags/list', '/v2/UPPER/tags/list', '/v2//x/tags/list', '/v2/a/./b/manifests/x']) {
      const res = await rawGet(s.host, path);
      assert.equal(res.status, 400, path);
      assert.match(res.body, /NAME_INVALID/, path);
    }
  });

  it('random methods, paths and headers never produce a 500 or kill the server', async () => {
    const segment = fc.oneof(fc.constantFrom('v2', 'blobs', 'uploads', 'manifests', 'tags', 'list', 'referrers', '_catalog', '..', '%2F', 'sha256:abc', sha(Buffer.from('x'))), fc.stringMatching(/^[a-zA-Z0-9._%:-]{0,12}$/));
    const path = fc.array(segment, { minLength: 1, maxLength: 6 }).map((p) => `/v2/${p.join('/')}`);
    const method = fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS');
    const query = fc.constantFrom('', '?n=-1', '?n=abc', '?digest=bad', '?mount=x&from=Y', '?last=%FF', '?artifactType=');
    await fc.assert(
      fc.asyncProperty(method, path, query, fc.constantFrom('bytes=0-1', 'bytes=9-1', 'junk', undefined), async (m, p, q, range) => {
        const res = await rawRequest(s.host, m, p + q, range ? { Range: range, 'Content-Range': range.replace('bytes=', '') } : {});
        assert.ok(res.status < 500, `${m} ${p}${q} -> ${res.status} ${res.body}`);
      }),
      { numRuns: 250, seed: 42 },
    );
    assert.equal((await fetch(`${s.url}/v2/`)).status, 200);
  });
});

describe('restart and gc', () => {
  it('an upload started before a restart resumes and completes after it', async () => {
    const data = await mkdtemp(join(tmpdir(), 'shoal-restart-'));
    let s = await startShoal({ dataDir: data });
    try {
      const loc = await startUpload(s, 'rs/app');
      const blob = randomBytes(300_000);
      let res = await fetch(`${s.url}${loc}`, { method: 'PATCH', body: new Uint8Array(blob.subarray(0, 100_000)), headers: { 'Content-Range': '0-99999', 'Content-Type': 'application/octet-stream' } });
      assert.equal(res.status, 202);
      const next = res.headers.get('location')!;
      await s.stop({ keepData: true });
      s = await startShoal({ dataDir: data });
      res = await fetch(`${s.url}${next}`);
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('range'), '0-99999');
      res = await fetch(`${s.url}${next}${next.includes('?') ? '&' : '?'}digest=${sha(blob)}`, { method: 'PUT', body: new Uint8Array(blob.subarray(100_000)), headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(res.status, 201);
      res = await fetch(`${s.url}/v2/rs/app/blobs/${sha(blob)}`);
      assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(blob));
    } finally {
      await s.stop();
      await rm(data, { recursive: true, force: true });
    }
  });

  it('shoal gc --dry-run reports, shoal gc deletes unreferenced blobs, while the registry keeps serving', async () => {
    const s = await startShoal();
    try {
      const orphan = randomBytes(4096);
      const kept = Buffer.from('{}');
      for (const b of [orphan, kept]) {
        const res = await fetch(`${s.url}/v2/gc/app/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', body: new Uint8Array(b) });
        assert.equal(res.status, 201);
      }
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(kept), size: 2 }, layers: [] }));
      let res = await fetch(`${s.url}/v2/gc/app/manifests/v1`, { method: 'PUT', body: new Uint8Array(manifest), headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 201);
      await new Promise((r) => setTimeout(r, 1100));
      const dry = await run(process.execPath, [shoalBin, 'gc', '--data', s.dataDir, '--grace', '1s', '--dry-run', '--json']);
      const dryReport = JSON.parse(dry.stdout.trim().split('\n').pop()!);
      assert.equal(dryReport.dryRun, true);
      // GET, not HEAD: a HEAD would (rightly) refresh the blob's grace period.
      assert.equal((await fetch(`${s.url}/v2/gc/app/blobs/${sha(orphan)}`)).status, 200, 'dry run deletes nothing');
      assert.deepEqual(dryReport.candidates, [sha(orphan)]);
      const wet = await run(process.execPath, [shoalBin, 'gc', '--data', s.dataDir, '--grace', '1s', '--json']);
      const report = JSON.parse(wet.stdout.trim().split('\n').pop()!);
      assert.equal(report.linksPruned, 1);
      assert.deepEqual(report.candidates, [sha(orphan)]);
      assert.equal((await fetch(`${s.url}/v2/gc/app/blobs/${sha(orphan)}`, { method: 'HEAD' })).status, 404);
      res = await fetch(`${s.url}/v2/gc/app/manifests/v1`);
      assert.equal(res.status, 200);
      assert.equal((await fetch(`${s.url}/v2/gc/app/blobs/${sha(kept)}`)).status, 200, 'referenced blob kept');
    } finally {
      await s.stop();
    }
  });
});

function rawGet(host: string, path: string) {
  return rawRequest(host, 'GET', path, {});
}

/** A raw HTTP/1.1 request, so that paths reach the server exactly as written (no URL normalisation). */
function rawRequest(host: string, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const [h, p] = host.split(':');
  return new Promise((resolve, reject) => {
    const sock = connect(Number(p), h!);
    let data = '';
    sock.setEncoding('latin1');
    sock.on('data', (c) => (data += c));
    sock.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
    });
    sock.on('error', reject);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`);
  });
}
