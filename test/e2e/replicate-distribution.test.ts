// Resume against Debian's docker-registry (Distribution 2.8), which cancels an upload a client cut
// off mid-PATCH: `shoal replicate` gets SIGTERM while a chunk is in flight (held by an HTTP proxy),
// finishes and journals that chunk, exits; the rerun resumes from the target's confirmed offset
// and sends exactly the bytes that had not arrived.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { startDistribution, type Registry } from '../support/target.js';
import { startHttpProxy, type HttpProxy } from '../support/http-proxy.js';
import { RegistryClient as TestClient, pushImage, randomBlob } from '../support/oci-http.js';
import { run, tempDir, removeDir, which } from '../support/tools.js';

const MiB = 1024 * 1024;

describe('shoal replicate to docker-registry: SIGTERM between chunks, then resume', { skip: !which('docker-registry') && 'docker-registry not installed' }, () => {
  let source: RunningShoal;
  let target: Registry;
  let proxy: HttpProxy;
  let state: string;
  let patches = 0;
  let onPatch: (n: number) => void = () => {};
  before(async () => {
    source = await startShoal({ args: ['--no-chains'] });
    target = await startDistribution();
    // PATCHes are held a moment so that the signal lands while one is in flight.
    proxy = await startHttpProxy(target.url, { holdMs: 150, onRequest: (req) => req.method === 'PATCH' && onPatch(++patches) });
    state = await tempDir('replicate-dist-state');
  });
  after(async () => {
    await proxy?.close();
    await target?.stop();
    await source?.stop();
    await removeDir(state);
  });

  it('finishes and journals the chunk in flight, and the rerun sends only the rest', async () => {
    const size = 8 * MiB;
    const layer = randomBlob(size);
    const client = new TestClient(source.url);
    const img = await pushImage(client, 'team/big', { layerBlobs: [layer], ref: 'v1' });
    await client.close();
    const args = (dest: string) => [shoalBin, 'replicate', `${source.url}/team/big:v1`, `${dest}/team/big:v1`, '--state', state, '--chunk-size', '1MiB', '--concurrency', '1', '--no-referrers', '--json'];

    const child = spawn(process.execPath, args(proxy.url), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // PATCH 1 is the config blob; PATCH 4 is the layer's third chunk: signal while it is held.
    onPatch = (n) => n === 4 && child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 143, stderr);
    assert.match(stderr, /finishing the chunk in flight/);
    assert.equal(patches, 4, 'no chunk was started after the signal');

    // Same destination URL: the journal is keyed by it.
    onPatch = () => {};
    const rerun = await run(process.execPath, args(proxy.url), { timeoutMs: 60_000 });
    assert.equal(rerun.code, 0, rerun.stderr);
    const result = JSON.parse(rerun.stdout.trim().split('\n').pop()!) as { digest: string; bytesSent: number; blobs: { resumed: number; present: number } };
    assert.equal(result.digest, img.manifest.digest);
    assert.equal(result.blobs.resumed, 1, 'the layer resumed on Distribution, not restarted');
    assert.equal(result.blobs.present, 1, 'the config had been committed before the signal');
    assert.equal(result.bytesSent, size - 3 * MiB, 'the three acknowledged chunks are not sent again');
    const got = await fetch(`${target.url}/v2/team/big/blobs/${layer.digest}`);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), layer.data);
  });
});
