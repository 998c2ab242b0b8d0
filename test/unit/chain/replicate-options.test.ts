// Replication options that only show against a real target: per-target repository/tag filters
// (through a chain run), the blob concurrency limit and the replicator's own retries (through an
// HTTP proxy in front of an in-process registry that counts in-flight requests or answers 503).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient as TestClient, pushImage } from '../../support/oci-http.js';
import { startHttpProxy } from '../../support/http-proxy.js';
import { RegistryClient } from '../../../src/client/registry-client.js';
import { Replicator } from '../../../src/replicate/replicator.js';
import { MemoryUploadJournal } from '../../../src/replicate/journal.js';
import { fakeScanner } from './fake-scanner.js';
import { startInProcess } from './inproc.js';
import { chainApiClient, waitForRun } from './chain-api.js';

describe('replication options', () => {
  let src: Awaited<ReturnType<typeof startInProcess>>;
  let dst: Awaited<ReturnType<typeof startInProcess>>;
  let client: TestClient;
  before(async () => {
    src = await startInProcess({ chains: true, extras: { scanner: fakeScanner(new Set()) } });
    dst = await startInProcess();
    client = new TestClient(src.url);
  });
  after(async () => {
    await client.close();
    await src.stop();
    await dst.stop();
  });

  const status = async (path: string) => {
    const res = await new RegistryClient(dst.url).send('HEAD', path);
    res.body.resume();
    return res.status;
  };

  it('a target only gets the repositories and tags its filters match', async () => {
    const api = chainApiClient(src.url);
    const targets = [
      { name: 'releases', url: dst.url, tags: ['release-*'], rewrite: { prefix: 'rel/' } },
      { name: 'apps-only', url: dst.url, repositories: ['apps/**'], rewrite: { prefix: 'apps-mirror/' } },
      { name: 'all', url: dst.url, rewrite: { prefix: 'all/' } },
    ];
    assert.equal((await api('PUT', '/filters', { repositories: ['**'], replicate: { targets } })).status, 200);
    await pushImage(client, 'team/svc', { layers: 1, layerSize: 700, ref: 'dev-1' });
    const dev = await waitForRun(api, 'filters', (r) => r.tag === 'dev-1');
    assert.equal(dev.status, 'succeeded', dev.reason);
    assert.deepEqual((dev.stages.find((s) => s.name === 'replicate')!.output as { targets: Array<{ name: string }> }).targets.map((t) => t.name), ['all']);
    assert.equal(await status('/v2/rel/team/svc/manifests/dev-1'), 404, 'tag filter release-* skips dev-1');
    assert.equal(await status('/v2/apps-mirror/team/svc/manifests/dev-1'), 404, 'repository filter apps/** skips team/svc');
    assert.equal(await status('/v2/all/team/svc/manifests/dev-1'), 200);

    await pushImage(client, 'team/svc', { layers: 1, layerSize: 700, ref: 'release-1' });
    const rel = await waitForRun(api, 'filters', (r) => r.tag === 'release-1');
    assert.equal(rel.status, 'succeeded', rel.reason);
    assert.equal(await status('/v2/rel/team/svc/manifests/release-1'), 200);
    assert.equal(await status('/v2/apps-mirror/team/svc/manifests/release-1'), 404);
    assert.equal((await api('DELETE', '/filters')).status, 204);
  });

  it('never has more blob requests in flight than its concurrency', async () => {
    await pushImage(client, 'conc/app', { layers: 8, layerSize: 50_000, ref: 'v1' });
    const proxy = await startHttpProxy(dst.url, { holdMs: 20 });
    try {
      const r = new Replicator(new RegistryClient(src.url), new RegistryClient(proxy.url), { journal: new MemoryUploadJournal(), concurrency: 2, chunkSize: 64 * 1024 });
      const res = await r.replicate({ sourceRepo: 'conc/app', reference: 'v1', targetRepo: 'conc/app' });
      assert.equal(res.blobs.copied, 9, '8 layers and the config');
      assert.ok(proxy.seen.length > 9 * 3, `requests went through the proxy (${proxy.seen.length})`);
      assert.equal(proxy.maxInFlight(), 2, 'two workers overlap, never a third');
    } finally {
      await proxy.close();
    }
  });

  it('retries a target that answers 503 twice, logging each retry, and succeeds', async () => {
    const img = await pushImage(client, 'retry/app', { layers: 1, layerSize: 30_000, ref: 'v1' });
    let refused = 0;
    const proxy = await startHttpProxy(dst.url, {
      fail: (req) => (req.method === 'POST' && req.url!.includes('/blobs/uploads/') && refused < 2 ? (refused++, 503) : undefined),
    });
    try {
      const log: string[] = [];
      const r = new Replicator(new RegistryClient(src.url), new RegistryClient(proxy.url), { journal: new MemoryUploadJournal(), concurrency: 1, attempts: 3, backoffMs: 10 });
      const res = await r.replicate({ sourceRepo: 'retry/app', reference: 'v1', targetRepo: 'retry/app', onLog: (m) => log.push(m) });
      assert.equal(res.digest, img.manifest.digest);
      assert.equal(refused, 2);
      const retries = log.filter((l) => /attempt \d failed .*503.*retrying/.test(l));
      assert.equal(retries.length, 2, log.join('\n'));
      assert.equal(await status('/v2/retry/app/manifests/v1'), 200);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after its attempts when the target keeps answering 503', async () => {
    await pushImage(client, 'retry/down', { layers: 1, layerSize: 1000, ref: 'v1' });
    const proxy = await startHttpProxy(dst.url, { fail: (req) => (req.method === 'POST' ? 503 : undefined) });
    try {
      const r = new Replicator(new RegistryClient(src.url), new RegistryClient(proxy.url), { journal: new MemoryUploadJournal(), concurrency: 1, attempts: 2, backoffMs: 10 });
      await assert.rejects(r.replicate({ sourceRepo: 'retry/down', reference: 'v1', targetRepo: 'retry/down' }), /answered 503/);
      assert.equal(proxy.seen.filter((s) => s.startsWith('POST')).length, 2, 'one try and one retry of the first blob');
    } finally {
      await proxy.close();
    }
  });
});
