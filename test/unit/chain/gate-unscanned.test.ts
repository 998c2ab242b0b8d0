// The gate when nothing was scanned (scan stage switched off) although a policy covers the
// repository: it must not fail open. `gate.unscanned` picks block (default), fail or pass.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient as TestClient, pushImage } from '../../support/oci-http.js';
import { startInProcess } from './inproc.js';
import { chainApiClient, waitForRun, type ChainApi } from './chain-api.js';

describe('gate without a scan result', () => {
  let reg: Awaited<ReturnType<typeof startInProcess>>;
  let client: TestClient;
  let api: ChainApi;
  before(async () => {
    reg = await startInProcess({ chains: true });
    client = new TestClient(reg.url);
    api = chainApiClient(reg.url);
    assert.equal((await api('PUT', '/_gate/policies/ns', { severity: 'CRITICAL' })).status, 200);
  });
  after(async () => {
    await client.close();
    await reg.stop();
  });

  const runFor = async (chain: string, repo: string, gate: Record<string, unknown>) => {
    const put = await api('PUT', `/${chain}`, { repositories: [repo], scan: { enabled: false }, gate });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const img = await pushImage(client, repo, { layers: 1, layerSize: 500, ref: 'v1' });
    return { run: await waitForRun(api, chain, (r) => r.repo === repo), digest: img.manifest.digest };
  };

  it('blocks by default: the run stops and pulls are refused, naming the reason', async () => {
    const { run, digest } = await runFor('dflt', 'ns/block', {});
    assert.equal(run.status, 'blocked', run.reason);
    assert.match(run.reason!, /gate policy "ns".*no scan result.*unscanned = block/);
    assert.equal(run.stages.find((s) => s.name === 'replicate')!.status, 'skipped');
    const pull = await fetch(`${reg.url}/v2/ns/block/manifests/v1`);
    assert.equal(pull.status, 403);
    assert.match(((await pull.json()) as { errors: Array<{ message: string }> }).errors[0]!.message, /gate policy "ns": not scanned/);
    assert.ok(reg.chains!.gate.lookup('ns/block', digest as never));
  });

  it('"fail" fails the run without recording a block; "pass" lets it through', async () => {
    const failed = await runFor('failing', 'ns/fail', { unscanned: 'fail' });
    assert.equal(failed.run.status, 'failed');
    assert.match(failed.run.reason!, /gate failed: .*no scan result/);
    assert.equal(reg.chains!.gate.lookup('ns/fail', failed.digest as never), undefined);
    const passed = await runFor('open', 'ns/pass', { unscanned: 'pass' });
    assert.equal(passed.run.status, 'succeeded', passed.run.reason);
    assert.equal((await fetch(`${reg.url}/v2/ns/pass/manifests/v1`, { method: 'HEAD' })).status, 200);
  });

  it('without a policy covering the repository the gate passes', async () => {
    const { run } = await runFor('free', 'free/app', {});
    assert.equal(run.status, 'succeeded', run.reason);
  });

  it('the API rejects an unknown mode', async () => {
    const bad = await api('PUT', '/bad', { repositories: ['x'], gate: { unscanned: 'maybe' } });
    assert.equal(bad.status, 400);
  });
});
