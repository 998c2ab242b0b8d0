// Delivery chain end to end with real processes: `shoal serve` with chains, Debian's
// docker-registry as the replication target, a P2P scheduler + seed, a webhook receiver; and a
// replicator SIGKILLed in the middle of a 512 MiB blob that resumes without re-sending.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Agent, request as undiciRequest } from 'undici';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { startCountingProxy, type CountingProxy } from '../support/counting-proxy.js';
import { tempDir, removeDir, run } from '../support/tools.js';

const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
const request = (url: string, opts: Parameters<typeof undiciRequest>[1] = {}) => undiciRequest(url, { ...opts, dispatcher });
const MiB = 1024 * 1024;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes one image with a single layer of `size` pseudo-random bytes, streamed in 16 MiB PATCHes. */
async function pushLargeImage(base: string, repo: string, tag: string, size: number): Promise<{ manifestDigest: string; layerDigest: string }> {
  const seed = randomBytes(16 * MiB);
  const hash = createHash('sha256');
  const post = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  post.body.resume();
  let location = String(post.headers.location);
  for (let off = 0, i = 0; off < size; off += seed.length, i++) {
    const chunk = Buffer.from(seed.subarray(0, Math.min(seed.length, size - off)));
    chunk.writeUInt32BE(i, 0); // every chunk distinct
    hash.update(chunk);
    const res = await request(`${base}${location}`, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + chunk.length - 1}` }, body: chunk });
    res.body.resume();
    assert.equal(res.statusCode, 202);
    location = String(res.headers.location);
  }
  const layerDigest = `sha256:${hash.digest('hex')}`;
  const fin = await request(`${base}${location}?digest=${layerDigest}`, { method: 'PUT' });
  fin.body.resume();
  assert.equal(fin.statusCode, 201);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const cfg = await request(`${base}/v2/${repo}/blobs/uploads/?digest=${sha(config)}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: config });
  cfg.body.resume();
  assert.equal(cfg.statusCode, 201);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size }],
    }),
  );
  const m = await request(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  m.body.resume();
  assert.equal(m.statusCode, 201);
  return { manifestDigest: sha(manifest), layerDigest };
}

async function blobDigest(base: string, repo: string, digest: string): Promise<string> {
  const res = await request(`${base}/v2/${repo}/blobs/${digest}`, { bodyTimeout: 120_000 });
  assert.equal(res.statusCode, 200);
  const hash = createHash('sha256');
  for await (const c of res.body) hash.update(c as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

describe('replication killed mid-blob resumes without re-sending', () => {
  let source: RunningShoal;
  let target: RunningShoal;
  let proxy: CountingProxy;
  let state: string;
  before(async () => {
    source = await startShoal({ args: ['--no-chains'] });
    target = await startShoal({ args: ['--no-chains'] });
    proxy = await startCountingProxy(Number(target.host.split(':')[1]));
    state = await tempDir('replicate-state');
  });
  after(async () => {
    await proxy?.close();
    await source?.stop();
    await target?.stop();
    if (state) await removeDir(state);
  });

  it('SIGKILL halfway through a 512 MiB blob; the rerun sends only the rest and the digest matches', { timeout: 300_000 }, async (t) => {
    const size = 512 * MiB;
    const img = await pushLargeImage(source.url, 'team/big', 'v1', size);
    const args = [shoalBin, 'replicate', `${source.url}/team/big:v1`, `${proxy.url}/mirror/big:v1`, '--state', state, '--chunk-size', '16MiB', '--json'];

    // First run: killed (SIGKILL, by pid) once ~40 % of the blob went through the proxy.
    const first = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<NodeJS.Signals | number | null>((r) => first.once('exit', (code, signal) => r(signal ?? code)));
    const deadline = Date.now() + 120_000;
    while (proxy.sent() < 0.4 * size && first.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    first.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', 'the first replicator was killed before it finished');
    const sentBeforeKill = proxy.sent();
    assert.ok(sentBeforeKill > 0.3 * size && sentBeforeKill < size, `killed mid-blob (${(sentBeforeKill / MiB).toFixed(0)} MiB sent)`);

    // Rerun with the same journal: resumes from the target's upload offset.
    proxy.reset();
    const rerun = await run(process.execPath, args, { timeoutMs: 240_000 });
    const result = JSON.parse(rerun.stdout.trim().split('\n').pop()!) as { digest: string; bytesSent: number; blobs: { resumed: number } };
    const resentOnWire = proxy.sent();
    t.diagnostic(`before kill ${(sentBeforeKill / MiB).toFixed(1)} MiB on the wire; rerun ${(resentOnWire / MiB).toFixed(1)} MiB on the wire, ${(result.bytesSent / MiB).toFixed(1)} MiB payload`);
    assert.equal(result.digest, img.manifestDigest);
    assert.equal(result.blobs.resumed, 1, 'the large blob was resumed, not restarted');
    assert.ok(resentOnWire < 0.6 * size, `the rerun sent ${(resentOnWire / MiB).toFixed(0)} MiB of ${size / MiB} MiB`);
    // What arrived before the kill (minus at most the chunk in flight) plus the rerun covers the blob.
    assert.ok(sentBeforeKill + resentOnWire >= size, 'nothing was lost');
    assert.ok(result.bytesSent <= size - 0.3 * size);

    // End-to-end digest check on what the target serves.
    assert.equal(await blobDigest(target.url, 'mirror/big', img.layerDigest), img.layerDigest);
    const m = await request(`${target.url}/v2/mirror/big/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(sha(Buffer.from(await m.body.arrayBuffer())), img.manifestDigest);
  });
});

export { join };
