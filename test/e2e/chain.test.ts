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
import { tempDir, removeDir, run, which } from '../support/tools.js';
import { startDistribution, type Registry } from '../support/target.js';
import { startRole, stopAllRoles, type RoleProcess } from '../support/fleet.js';
import { pushImage as pushBuiltImage } from '../support/image.js';
import { OSV_FIXTURES, buildCleanImage, buildDebianAppImage } from '../support/scan-images.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { verifySignature, SIGNATURE_HEADER } from '../../src/notify/webhook.js';

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

    // First run: killed (SIGKILL, by pid) once half of the blob went through the proxy.
    const first = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<NodeJS.Signals | number | null>((r) => first.once('exit', (code, signal) => r(signal ?? code)));
    const deadline = Date.now() + 120_000;
    while (proxy.sent() < 0.5 * size && first.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
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
    // At most the chunk that was in flight at the kill is sent twice (plus requests' headers).
    assert.ok(resentOnWire <= size - sentBeforeKill + 16 * MiB + MiB, 'nothing that had arrived was sent again');
    // What arrived before the kill (minus at most the chunk in flight) plus the rerun covers the blob.
    assert.ok(sentBeforeKill + resentOnWire >= size, 'nothing was lost');
    assert.ok(result.bytesSent <= size - 0.3 * size);

    // End-to-end digest check on what the target serves.
    assert.equal(await blobDigest(target.url, 'mirror/big', img.layerDigest), img.layerDigest);
    const m = await request(`${target.url}/v2/mirror/big/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(sha(Buffer.from(await m.body.arrayBuffer())), img.manifestDigest);
  });
});


const shoalCli = (args: string[], opts: { allowFail?: boolean } = {}) => run(process.execPath, [shoalBin, ...args], { timeoutMs: 120_000, ...opts });

describe('delivery chain: serve + docker-registry target + scheduler/seed + webhook receiver', () => {
  let registry: RunningShoal;
  let target: Registry;
  let scheduler: RoleProcess;
  let seed: RoleProcess;
  let hooks: WebhookReceiver;
  const SECRET = 'e2e-webhook-secret';

  before(async () => {
    registry = await startShoal();
    await shoalCli(['vulndb', 'import', OSV_FIXTURES, '--data', registry.dataDir]);
    target = await startDistribution();
    scheduler = await startRole('scheduler', '127.0.0.2:0', ['--registry', registry.url]);
    seed = await startRole('seed', '127.0.0.3:0', ['--scheduler', scheduler.url, '--registry', registry.url]);
    hooks = await startWebhookReceiver();
    const reg = ['--registry', registry.url];
    await shoalCli(['chain', ...reg, 'add', 'ship', '--repo', 'team/**', '--tag', 'v*', '--replicate-to', target.url, '--preheat', scheduler.url, '--webhook', hooks.url, '--webhook-secret', SECRET, '--retries', '1']);
    await shoalCli(['chain', ...reg, 'gate', 'set', 'team', '--severity', 'HIGH']);
  });
  after(async () => {
    await stopAllRoles();
    await hooks?.close();
    await target?.stop();
    await registry?.stop();
  });

  /** Waits for the push-triggered run of `repo`, then follows it with `shoal chain watch` (exit code = outcome). */
  async function runOf(repo: string): Promise<{ run: { id: string; status: string; reason?: string; stages: Array<{ name: string; status: string; output?: any }> }; watchCode: number | null; watchOut: string }> {
    const deadline = Date.now() + 30_000;
    let id: string | undefined;
    while (!id && Date.now() < deadline) {
      const { stdout } = await shoalCli(['chain', '--registry', registry.url, 'runs', '--repo', repo, '--json']);
      id = (JSON.parse(stdout) as Array<{ id: string }>)[0]?.id;
      if (!id) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(id, `a run was triggered by the push of ${repo}`);
    const watch = await run(process.execPath, [shoalBin, 'chain', '--registry', registry.url, 'watch', id], { timeoutMs: 180_000, allowFail: true });
    const res = await request(`${registry.url}/api/v1/chains/_runs/${id}`);
    return { run: ((await res.body.json()) as { run: any }).run, watchCode: watch.code, watchOut: watch.stdout };
  }

  it('(a) an image with a known-vulnerable package is blocked: not replicated, pulls refused, webhook signed', { timeout: 240_000 }, async () => {
    await pushBuiltImage(registry.url, 'team/vuln', 'v1', buildDebianAppImage());
    const { run: r, watchCode, watchOut } = await runOf('team/vuln');
    assert.equal(r.status, 'blocked', r.reason);
    assert.equal(watchCode, 3, 'shoal chain watch exits 3 for a blocked run');
    assert.match(watchOut, /blocked/);
    assert.match(r.reason!, /gate policy "team".*CVE-2099-1001|DEBIAN-CVE-2099-1001/);
    assert.deepEqual(r.stages.map((s) => s.status), ['succeeded', 'blocked', 'skipped', 'skipped', 'succeeded']);

    // Nothing reached the target registry.
    const tags = await request(`${target.url}/v2/team/vuln/tags/list`);
    tags.body.resume();
    assert.equal(tags.statusCode, 404);

    // Pulls are refused, by tag and by digest, over HTTP and with skopeo.
    const pull = await request(`${registry.url}/v2/team/vuln/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const body = (await pull.body.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(pull.statusCode, 403);
    assert.equal(body.errors[0]!.code, 'DENIED');
    assert.match(body.errors[0]!.message, /gate policy "team"/);
    if (which('skopeo')) {
      const sk = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/team/vuln:v1`], { allowFail: true, timeoutMs: 60_000 });
      assert.notEqual(sk.code, 0);
      assert.match(sk.stderr, /denied|gate policy/i);
    }

    // The blocked event arrived, signed over its raw body.
    const ev = await hooks.waitFor((e) => e.json.type === 'chain.run.blocked' && e.json.subject.startsWith('team/vuln@'));
    assert.ok(verifySignature(SECRET, ev.body, ev.headers[SIGNATURE_HEADER] as string));
    assert.equal(ev.json.specversion, '1.0');
    assert.ok(hooks.events.some((e) => e.json.type === 'chain.run.started' && e.json.subject.startsWith('team/vuln@')));
  });

  it('(b) a clean image is scanned (SBOM referrer), replicated to docker-registry with the same digests, and preheated', { timeout: 240_000 }, async () => {
    const image = buildCleanImage();
    await pushBuiltImage(registry.url, 'team/clean', 'v1', image);
    const { run: r, watchCode } = await runOf('team/clean');
    assert.equal(r.status, 'succeeded', r.reason);
    assert.equal(watchCode, 0);
    assert.deepEqual(r.stages.map((s) => s.status), ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);

    // Scanned: the SBOM is a referrer of the image in the source registry.
    const sbomDigest = r.stages[0]!.output.sbomDigest as string;
    assert.ok(sbomDigest, 'scan attached an SBOM');
    const refs = (await (await request(`${registry.url}/v2/team/clean/referrers/${image.manifest.digest}`)).body.json()) as { manifests: Array<{ digest: string }> };
    assert.ok(refs.manifests.some((m) => m.digest === sbomDigest));

    // Replicated with identical digests: manifest (skopeo and HTTP) and every blob.
    const m = await request(`${target.url}/v2/team/clean/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    assert.equal(sha(Buffer.from(await m.body.arrayBuffer())), image.manifest.digest);
    if (which('skopeo')) {
      const sk = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${target.host}/team/clean:v1`], { timeoutMs: 60_000 });
      assert.equal(JSON.parse(sk.stdout).Digest, image.manifest.digest);
    }
    for (const b of [image.config, ...image.layers]) assert.equal(await blobDigest(target.url, 'team/clean', b.digest), b.digest);
    // The SBOM went along: docker-registry has no referrers API, so under the fallback tag.
    const fallback = await request(`${target.url}/v2/team/clean/manifests/${image.manifest.digest.replace(':', '-')}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    const idx = (await fallback.body.json()) as { manifests: Array<{ digest: string }> };
    assert.ok(idx.manifests.some((d) => d.digest === sbomDigest));

    // Preheated: the scheduler's job reports every blob held by the seed.
    const job = r.stages[3]!.output.clusters[0].job as string;
    const status = (await (await request(`${scheduler.url}/scheduler/v1/preheat/${job}`)).body.json()) as { state: string; blobs: Array<{ digest: string; seedsDone: number }> };
    assert.equal(status.state, 'done');
    assert.deepEqual(status.blobs.map((b) => b.digest).sort(), [image.config.digest, ...image.layers.map((l) => l.digest)].sort());
    assert.ok(status.blobs.every((b) => b.seedsDone >= 1));
    assert.ok(seed.records().some((rec) => JSON.stringify(rec).includes(image.layers[0]!.digest)), 'the seed logged fetching the layer');

    const done = await hooks.waitFor((e) => e.json.type === 'chain.run.succeeded' && e.json.subject === `team/clean@${image.manifest.digest}`);
    assert.ok(verifySignature(SECRET, done.body, done.headers[SIGNATURE_HEADER] as string));
  });
});

describe('a chain run interrupted by a crash of the registry resumes after the restart', () => {
  let target: RunningShoal;
  let proxy: CountingProxy;
  let data: string;
  let registry: RunningShoal | undefined;
  before(async () => {
    target = await startShoal({ args: ['--no-chains'] });
    proxy = await startCountingProxy(Number(target.host.split(':')[1]));
    data = await tempDir('chain-crash');
  });
  after(async () => {
    await registry?.stop();
    await proxy?.close();
    await target?.stop();
    if (data) await removeDir(data);
  });

  it('SIGKILL `shoal serve` mid-replication; after the restart the run finishes without re-sending what arrived', { timeout: 300_000 }, async (t) => {
    const size = 256 * MiB;
    registry = await startShoal({ dataDir: data });
    await shoalCli(['chain', '--registry', registry.url, 'add', 'crash', '--repo', 'team/**', '--replicate-to', proxy.url, '--off', 'scan,gate,preheat,notify']);
    const img = await pushLargeImage(registry.url, 'team/crash', 'v1', size);
    const deadline = Date.now() + 120_000;
    while (proxy.sent() < 0.5 * size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const exited = new Promise((r) => registry!.proc.once('exit', r));
    registry.proc.kill('SIGKILL');
    await exited;
    const beforeCrash = proxy.sent();
    assert.ok(beforeCrash < size, 'killed before the blob was through');
    proxy.reset();

    registry = await startShoal({ dataDir: data });
    const runs = JSON.parse((await shoalCli(['chain', '--registry', registry.url, 'runs', '--repo', 'team/crash', '--json'])).stdout) as Array<{ id: string }>;
    assert.equal(runs.length, 1);
    const watch = await run(process.execPath, [shoalBin, 'chain', '--registry', registry.url, 'watch', runs[0]!.id], { timeoutMs: 180_000, allowFail: true });
    assert.equal(watch.code, 0, watch.stdout);
    assert.match(watch.stdout, /resuming after a restart/);
    const res = await request(`${registry.url}/api/v1/chains/_runs/${runs[0]!.id}`);
    const r = ((await res.body.json()) as { run: { status: string; stages: Array<{ name: string; output?: any }> } }).run;
    assert.equal(r.status, 'succeeded');
    const out = r.stages.find((s) => s.name === 'replicate')!.output.targets[0];
    t.diagnostic(`before the crash ${(beforeCrash / MiB).toFixed(1)} MiB on the wire; after the restart ${(proxy.sent() / MiB).toFixed(1)} MiB`);
    assert.equal(out.blobs.resumed, 1);
    assert.ok(proxy.sent() < 0.7 * size, `re-sent ${(proxy.sent() / MiB).toFixed(0)} MiB of ${size / MiB}`);
    assert.ok(proxy.sent() <= size - beforeCrash + 16 * MiB + MiB, 'at most the chunk in flight at the crash is sent again');
    assert.equal(await blobDigest(target.url, 'team/crash', img.layerDigest), img.layerDigest);
  });
});
