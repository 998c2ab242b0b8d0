// Full sync goes through the chain's scan and gate: an image no run of the chain cleared (pushed
// before the chain existed) is not copied; the sync starts a run for it instead, and that run
// decides. Also the timer-driven scheduler (short tick, real sockets, no API call).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient as TestClient, pushImage, pushArtifact, buildImage, pushBlobs, pushManifest } from '../../support/oci-http.js';
import { RegistryClient } from '../../../src/client/registry-client.js';
import { fakeScanner } from './fake-scanner.js';
import { startInProcess } from './inproc.js';
import { chainApiClient, waitForRun, type ChainApi } from './chain-api.js';

describe('full sync and the chain gate', () => {
  const vulnerable = new Set<string>();
  let reg: Awaited<ReturnType<typeof startInProcess>>;
  let target: Awaited<ReturnType<typeof startInProcess>>;
  let client: TestClient;
  let api: ChainApi;
  let dst: RegistryClient;
  let goodDigest: string;
  before(async () => {
    reg = await startInProcess({ chains: true, extras: { scanner: fakeScanner(vulnerable), syncTickMs: 50 } });
    target = await startInProcess();
    client = new TestClient(reg.url);
    api = chainApiClient(reg.url);
    dst = new RegistryClient(target.url);
    assert.equal((await api('PUT', '/_gate/policies/old', { severity: 'HIGH' })).status, 200);
  });
  after(async () => {
    await client.close();
    await reg.stop();
    await target.stop();
  });

  it('an image pushed before the chain existed is scanned and gated, not copied, when a sync finds it', async () => {
    const bad = buildImage({ layers: 1, layerSize: 2000 });
    vulnerable.add(bad.manifest.digest);
    await pushBlobs(client, 'old/bad', bad.blobs);
    await pushManifest(client, 'old/bad', 'v1', bad.manifest);
    const good = await pushImage(client, 'old/good', { layers: 1, layerSize: 3000, ref: 'v1' });
    goodDigest = good.manifest.digest;
    // Attached after the pushes: no push ever triggered it.
    const put = await api('PUT', '/late', { repositories: ['old/**'], replicate: { targets: [{ name: 't', url: target.url }], retries: 0 } });
    assert.equal(put.status, 200, JSON.stringify(put.json));

    const first = await api('POST', '/late/sync');
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.json.replicated, 0, 'nothing is copied before the gate decided');
    assert.deepEqual(first.json.queued.map((q: { image: string; started: boolean }) => [q.image, q.started]).sort(), [['old/bad:v1', true], ['old/good:v1', true]]);
    const badRun = await waitForRun(api, 'late', (r) => r.repo === 'old/bad');
    assert.equal(badRun.trigger, 'sync');
    assert.equal(badRun.status, 'blocked', badRun.reason);
    const goodRun = await waitForRun(api, 'late', (r) => r.repo === 'old/good');
    assert.equal(goodRun.status, 'succeeded', goodRun.reason);
    assert.equal((await dst.send('GET', '/v2/old/bad/manifests/v1')).status, 404, 'the vulnerable image never reached the target');
    assert.equal((await dst.getManifest('old/good', 'v1')).digest, good.manifest.digest, 'the run the sync started replicated the clean image');

    const second = await api('POST', '/late/sync');
    assert.deepEqual([second.json.skippedBlocked, second.json.upToDate, second.json.replicated, second.json.queued.length], [1, 1, 0, 0]);
    assert.equal((await api('GET', '/_runs?chain=late')).json.runs.length, 2, 'a decided image starts no further run');
    assert.equal((await dst.send('GET', '/v2/old/bad/manifests/v1')).status, 404);
  });

  it('copies what a passed run cleared to a target added later, and with the gate switched off copies directly', async () => {
    const targets = [{ name: 't', url: target.url }, { name: 't2', url: target.url, rewrite: { prefix: 'two/' } }];
    assert.equal((await api('PUT', '/late', { repositories: ['old/**'], replicate: { targets, retries: 0 } })).status, 200);
    const r = await api('POST', '/late/sync');
    assert.deepEqual([r.json.replicated, r.json.skippedBlocked, r.json.queued.length], [1, 1, 0], JSON.stringify(r.json));
    assert.ok((await dst.getManifest('two/old/good', 'v1')).digest);
    assert.equal((await dst.send('GET', '/v2/two/old/bad/manifests/v1')).status, 404);

    const off = await api('PUT', '/nogate', { repositories: ['old/good'], onPush: false, gate: { enabled: false }, replicate: { targets: [{ name: 't', url: target.url, rewrite: { prefix: 'off/' } }] } });
    assert.equal(off.status, 200, JSON.stringify(off.json));
    const o = await api('POST', '/nogate/sync');
    assert.deepEqual([o.json.replicated, o.json.queued.length], [1, 0]);
    assert.equal((await api('GET', '/_runs?chain=nogate')).json.runs.length, 0, 'no run needed: the gate is off');
    assert.ok((await dst.getManifest('off/old/good', 'v1')).digest);
  });

  it('a signature pushed after the run goes to every target the run replicated to; the sync copies it to a target that lacks it', async () => {
    const sig = await pushArtifact(client, 'old/good', { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: goodDigest, size: (await dst.getManifest('old/good', 'v1')).body.length } });
    const has = async (repo: string) => {
      const res = await dst.send('HEAD', `/v2/${repo}/manifests/${sig.manifest.digest}`);
      res.body.resume();
      return res.status === 200;
    };
    const deadline = Date.now() + 10_000;
    while (!(await has('old/good')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(await has('old/good'), 'carried to the target the run replicated to');
    assert.equal(await has('two/old/good'), false, 'not to a target the run did not replicate to (the sync handles that one)');
    assert.equal(await has('off/old/good'), false);

    const r = await api('POST', '/late/sync');
    assert.deepEqual([r.json.referrersCopied, r.json.upToDate, r.json.replicated], [1, 2, 0], JSON.stringify(r.json));
    assert.ok(await has('two/old/good'), 'the sync compared referrer sets and copied the missing one');
    const again = await api('POST', '/late/sync');
    assert.equal(again.json.referrersCopied, 0);
  });

  it('the scheduler syncs on its own at the chain\'s interval, through the gate', async () => {
    const img = await pushImage(client, 'old/timed', { layers: 1, layerSize: 1500, ref: 'v1' });
    const put = await api('PUT', '/timed', { repositories: ['old/timed'], onPush: false, replicate: { targets: [{ name: 't', url: target.url, rewrite: { prefix: 'timed/' } }], syncIntervalMs: 100 } });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const run = await waitForRun(api, 'timed', () => true);
    assert.equal(run.trigger, 'sync', 'started by the scheduled sync, not by a push');
    assert.equal(run.status, 'succeeded', run.reason);
    assert.equal((await dst.getManifest('timed/old/timed', 'v1')).digest, img.manifest.digest);
    assert.equal((await api('DELETE', '/timed')).status, 204);
  });
});
