// The chain wired into a registry (in-process, real sockets) with a stand-in Scanner: push
// trigger, admin API, gate blocking the run and refusing pulls (admins excepted), replication of
// a clean image to a second registry, webhooks with valid signatures.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient as TestClient, pushImage, buildImage, pushBlobs, pushManifest } from '../../support/oci-http.js';
import { RegistryClient } from '../../../src/client/registry-client.js';
import { fakeScanner, finding } from './fake-scanner.js';
import type { Digest } from '../../../src/oci/digest.js';
import { blockingFindings, gateMiddleware } from '../../../src/chain/gate.js';
import { policyFor } from '../../../src/chain/store.js';
import { setPrincipal } from '../../../src/auth/principal.js';
import { verifySignature, SIGNATURE_HEADER } from '../../../src/notify/webhook.js';
import type { Run } from '../../../src/chain/model.js';
import type { RequestContext } from '../../../src/registry/context.js';
import { startInProcess } from './inproc.js';
import { chainApiClient, waitForRun, type ChainApi } from './chain-api.js';

const vulnerable = new Set<string>();

describe('chain runtime in a registry', () => {
  let reg: Awaited<ReturnType<typeof startInProcess>>;
  let target: Awaited<ReturnType<typeof startInProcess>>;
  let client: TestClient;
  let hooks: Server;
  let hookUrl: string;
  const received: Array<{ body: string; signature: string | undefined; type: string }> = [];

  before(async () => {
    reg = await startInProcess({ chains: true, extras: { scanner: fakeScanner(vulnerable) } });
    target = await startInProcess();
    client = new TestClient(reg.url);
    api = chainApiClient(reg.url);
    waitRun = (pred) => waitForRun(api, 'ship', pred);
    hooks = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString();
        received.push({ body, signature: req.headers[SIGNATURE_HEADER] as string | undefined, type: JSON.parse(body).type });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;
  });
  after(async () => {
    await client.close();
    await reg.stop();
    await target.stop();
    hooks.close();
  });

  let api: ChainApi;
  let waitRun: (pred: (r: Run) => boolean) => Promise<Run>;

  it('validates chain definitions at the API', async () => {
    const bad = await api('PUT', '/Bad_Name', { repositories: ['x'] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errors[0].code, 'INVALID_REQUEST');
    const missing = await api('PUT', '/ok', {});
    assert.equal(missing.status, 400);
    assert.match(missing.json.errors[0].message, /repositories/);
  });

  it('a push of a vulnerable image is blocked before replication and its pulls are refused', async () => {
    const put = await api('PUT', '/ship', {
      repositories: ['team/**'],
      tags: ['v*'],
      replicate: { targets: [{ name: 'eu', url: target.url, rewrite: { prefix: 'eu/' } }], retries: 0 },
      notify: { webhooks: [{ url: hookUrl, secret: 's3cret' }] },
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    assert.equal((await api('PUT', '/_gate/policies/team', { severity: 'HIGH', allow: ['CVE-2024-0003'] })).status, 200);

    const img = buildImage({ layers: 1, layerSize: 1000 });
    vulnerable.add(img.manifest.digest);
    await pushBlobs(client, 'team/app', img.blobs);
    await pushManifest(client, 'team/app', 'v1', img.manifest);
    const run = await waitRun((r) => r.repo === 'team/app' && r.trigger === 'push');
    const manual = await api('POST', '/ship/runs', { image: 'team/app:v1' });
    assert.equal(manual.status, 202);
    assert.equal((await waitRun((r) => r.id === manual.json.id)).status, 'blocked', 'a manual run decides the same');
    assert.equal(run.status, 'blocked');
    assert.match(run.reason!, /gate policy "team".*CVE-2024-0001 \(CRITICAL/);
    assert.doesNotMatch(run.reason!, /CVE-2024-0002/, 'LOW is below the policy');
    assert.equal(run.stages.find((s) => s.name === 'replicate')!.status, 'skipped');

    const pull = await fetch(`${reg.url}/v2/team/app/manifests/v1`);
    assert.equal(pull.status, 403);
    const body = (await pull.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'DENIED');
    assert.match(body.errors[0]!.message, /gate policy "team".*CVE-2024-0001/);
    assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/${img.manifest.digest}`, { method: 'HEAD' })).status, 403);
    assert.equal((await new RegistryClient(target.url).send('GET', '/v2/eu/team/app/manifests/v1')).status, 404, 'nothing replicated');

    const deadline = Date.now() + 10_000;
    while (!received.some((e) => e.type === 'chain.run.blocked') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const blocked = received.find((e) => e.type === 'chain.run.blocked');
    assert.ok(blocked, `blocked event received (got ${received.map((e) => e.type).join(', ')})`);
    assert.ok(verifySignature('s3cret', blocked.body, blocked.signature));
    assert.ok(!verifySignature('wrong', blocked.body, blocked.signature));
    const ev = JSON.parse(blocked.body);
    assert.equal(ev.specversion, '1.0');
    assert.equal(ev.subject, `team/app@${img.manifest.digest}`);

    // An admin lifts the block; pulls work again.
    assert.equal((await api('DELETE', `/_gate/blocked?repo=team/app&digest=${img.manifest.digest}`)).status, 204);
    assert.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`)).status, 200);
  });

  it('a clean image is replicated under its rewritten name with the same digest', async () => {
    const img = await pushImage(client, 'team/web', { layers: 2, layerSize: 5000, ref: 'v2' });
    const run = await waitRun((r) => r.repo === 'team/web');
    assert.equal(run.status, 'succeeded', run.reason);
    assert.equal(run.trigger, 'push');
    const m = await new RegistryClient(target.url).getManifest('eu/team/web', 'v2');
    assert.equal(m.digest, img.manifest.digest);
    assert.ok(received.some((e) => e.type === 'chain.run.succeeded'));
    const { json } = await api('GET', `/_runs/${run.id}`);
    assert.ok(json.logs.length >= 5, 'run has log lines');
    // Metrics: runs by outcome, pulls the gate refused, bytes replicated.
    const metrics = await (await fetch(`${reg.url}/metrics`)).text();
    assert.match(metrics, /shoal_chain_runs_total\{chain="ship",status="blocked"\} [1-9]/);
    assert.match(metrics, /shoal_chain_runs_total\{chain="ship",status="succeeded"\} [1-9]/);
    assert.match(metrics, /shoal_gate_pull_refusals_total [2-9]/);
    assert.match(metrics, /shoal_replication_bytes_sent_total\{target="eu"\} [1-9]/);
    assert.match(metrics, /shoal_chain_stage_seconds_count\{stage="scan",status="succeeded"\} [1-9]/);
    // The event stream of a finished run replays its state and log, then ends.
    const sse = await fetch(`${reg.url}/api/v1/chains/_runs/${run.id}/events`);
    assert.equal(sse.headers.get('content-type'), 'text/event-stream');
    const text = await sse.text();
    assert.match(text, /^event: run\ndata: \{.*"status":"succeeded"/m);
    assert.equal((text.match(/^event: log$/gm) ?? []).length, json.logs.length);
  });

  it('policy lookup and allow-lists; the pull gate lets administrators through', async () => {
    const policies = [
      { namespace: '', severity: 'CRITICAL' as const, allow: [] },
      { namespace: 'team', severity: 'HIGH' as const, allow: ['ALIAS-CVE-1'] },
    ];
    assert.equal(policyFor(policies, 'team/app')?.namespace, 'team');
    assert.equal(policyFor(policies, 'teamx/app')?.namespace, '');
    assert.deepEqual(blockingFindings(policies[1]!, [finding('CVE-1', 'CRITICAL'), finding('CVE-9', 'HIGH'), finding('CVE-8', 'MEDIUM')]).map((f) => f.id), ['CVE-9']);

    const digest = `sha256:${'d'.repeat(64)}` as Digest;
    await reg.chains!.gate.block({ repo: 'x/y', digest, policy: 'x', findings: [], blockedAt: 0, runId: 'r' });
    const mw = gateMiddleware(reg.service, reg.chains!.gate);
    const ctx = { route: { name: 'manifest', repo: 'x/y', ref: digest }, state: {} } as unknown as RequestContext;
    await assert.rejects(mw(ctx, async () => {}), /refused by gate policy/);
    setPrincipal(ctx, { name: 'root', kind: 'user', isAdmin: true, clientIp: '127.0.0.1' });
    let passed = false;
    await mw(ctx, async () => void (passed = true));
    assert.ok(passed);
    await reg.chains!.gate.unblock('x/y', digest);
  });
});
