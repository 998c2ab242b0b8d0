// P2P end to end with real processes: registry + scheduler + seed + 10 agents on 127.0.0.x,
// containerd pulling and running through an agent, a lying agent, peers killed mid-transfer,
// a scheduler outage (fallback), and a private registry whose blobs an agent must not hand out
// to callers without credentials.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Agent, request as undiciRequest } from 'undici';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { startRole, stopAllRoles, registryBlobGets, type RoleProcess } from '../support/fleet.js';
import { buildBusyboxImage, pushImage, pushBlob, allBlobs, DEFAULT_HELLO, type Blob } from '../support/image.js';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { assertPrerequisites, skipUnless, tempDir, removeDir, which, run } from '../support/tools.js';
import { startDistribution, type Registry } from '../support/target.js';

const execFileP = promisify(execFile);
// An explicit dispatcher: undici's default one would also become global fetch's (the image
// helpers use fetch), and undici 7 refuses the content-length header they set.
const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
const request = (url: string, opts: Parameters<typeof undiciRequest>[1] = {}) => undiciRequest(url, { ...opts, dispatcher });
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function randomBlob(size: number): Blob {
  const data = randomBytes(size);
  return { mediaType: 'application/octet-stream', digest: sha(data), size, data };
}

/** GET a blob through an agent, returning status and the sha256 of what arrived. */
async function getVia(agent: RoleProcess, repo: string, digest: string, headers: Record<string, string> = {}): Promise<{ status: number; digest: string; size: number; headers: Record<string, unknown> }> {
  const res = await request(`${agent.url}/v2/${repo}/blobs/${digest}`, { headers, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const hash = createHash('sha256');
  let size = 0;
  for await (const c of res.body) {
    hash.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { status: res.statusCode, digest: `sha256:${hash.digest('hex')}`, size, headers: res.headers };
}

async function agentStatus(agent: RoleProcess): Promise<{ totals: Record<string, number> }> {
  const res = await request(`${agent.url}/status`);
  return (await res.body.json()) as { totals: Record<string, number> };
}

async function metric(url: string, name: string): Promise<number> {
  const res = await request(`${url}/metrics`);
  const text = await res.body.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe('p2p fleet: registry + scheduler + seed + 10 agents as processes', () => {
  let registry: RunningShoal;
  let scheduler: RoleProcess;
  let seed: RoleProcess;
  const agents: RoleProcess[] = [];
  const image = buildBusyboxImage();
  const big = randomBlob(24 * 1024 * 1024 + 123); // 7 pieces of 4 MiB

  before(async () => {
    registry = await startShoal();
    scheduler = await startRole('scheduler', '127.0.0.2:0', ['--registry', registry.url]);
    seed = await startRole('seed', '127.0.0.3:0', ['--scheduler', scheduler.url, '--registry', registry.url]);
    for (let i = 0; i < 10; i++) {
      agents.push(await startRole('agent', `127.0.0.${11 + i}:0`, ['--scheduler', scheduler.url, '--registry', registry.url, '--labels', `dc=dc1,zone=z${i % 2},rack=r${i % 4}`]));
    }
    await pushImage(registry.url, 'p2p/app', '1', image);
    await pushBlob(registry.url, 'p2p/app', big);
  });

  after(async () => {
    await stopAllRoles();
    await registry?.stop();
  });

  it('every agent delivers every blob intact, and the registry serves each blob once', async () => {
    const blobs = [...allBlobs(image), big];
    await Promise.all(
      agents.map(async (a) => {
        for (const b of blobs) {
          const got = await getVia(a, 'p2p/app', b.digest);
          assert.equal(got.status, 200, `${a.host} ${b.digest}`);
          assert.equal(got.digest, b.digest);
          assert.equal(got.headers['docker-content-digest'], b.digest);
        }
      }),
    );
    for (const b of blobs) assert.equal(registryBlobGets(registry.output, b.digest), 1, `registry served ${b.digest} more than once`);
    let fromSwarm = 0;
    for (const a of agents) {
      // A client has its bytes as the pieces land; the agent counts the download once it has
      // hashed and promoted the whole blob, a moment later: wait (bounded) for that.
      let s = await agentStatus(a);
      for (let i = 0; i < 100 && s.totals.completed! < s.totals.downloads!; i++) {
        await new Promise((r) => setTimeout(r, 100));
        s = await agentStatus(a);
      }
      assert.equal(s.totals.fallbacks, 0, `${a.host} fell back to the registry`);
      fromSwarm += s.totals.bytesFromPeers! + s.totals.bytesFromSeed!;
    }
    assert.ok(fromSwarm >= 10 * big.size, 'bytes came through the swarm');
    assert.ok((await metric(scheduler.url, 'shoal_scheduler_announces_total')) > 0);
  });

  it('manifests and tags are proxied to the registry through the agent', async () => {
    const res = await request(`${agents[0]!.url}/v2/p2p/app/manifests/1?ns=${registry.host}`, { headers: { accept: image.manifest.mediaType } });
    const body = Buffer.from(await res.body.arrayBuffer());
    assert.equal(res.statusCode, 200);
    assert.equal(sha(body), image.manifest.digest);
    const missing = await request(`${agents[0]!.url}/v2/p2p/app/manifests/nope`);
    assert.equal(missing.statusCode, 404);
    assert.match(await missing.body.text(), /MANIFEST_UNKNOWN/);
  });

  it('containerd pulls and runs an image through an agent (hosts.toml), with no extra registry blob traffic', { skip: skipUnless(['containerd', 'ctr'], { root: true }) }, async () => {
    assertPrerequisites(['containerd', 'ctr'], { root: true });
    const hostsDir = await tempDir('hosts');
    let ctrd: Containerd | undefined;
    try {
      const { stdout } = await execFileP(process.execPath, [shoalBin, 'agent', 'containerd-config', '--registry', registry.host, '--registry-scheme', 'http', '--agent', agents[3]!.url, '--dir', hostsDir]);
      assert.match(stdout, /hosts\.toml/);
      ctrd = await startContainerd();
      const ref = `${registry.host}/p2p/app:1`;
      await ctrd.pull(ref, { hostsDir });
      const out = await ctrd.runContainer(ref, 'p2p-run');
      assert.equal(out.stdout, DEFAULT_HELLO);
      const agentLog = agents[3]!.output.join('\n');
      assert.match(agentLog, /"p2p download done"|"served"|/);
      for (const b of allBlobs(image)) assert.equal(registryBlobGets(registry.output, b.digest), 1, `${b.digest} fetched from the registry again`);
    } finally {
      await ctrd?.stop();
      await removeDir(hostsDir);
    }
  });

  it('a lying agent is caught: pieces verified, the liar blocklisted, the download completes', async () => {
    // 10 pieces: more than a child asks of the seed at once (5), so the rest go to the liar.
    const blob = randomBlob(40 * 1024 * 1024);
    await pushBlob(registry.url, 'p2p/app', blob);
    const liar = await startRole('agent', '127.0.0.40:0', ['--scheduler', scheduler.url, '--registry', registry.url, '--fault-corrupt-pieces']);
    assert.equal((await getVia(liar, 'p2p/app', blob.digest)).digest, blob.digest, 'the liar downloads honestly');
    // Fresh agents: the scheduler prefers agents that can serve over the seed, so they meet the liar.
    const victims = await Promise.all([41, 42, 43].map((n) => startRole('agent', `127.0.0.${n}:0`, ['--scheduler', scheduler.url, '--registry', registry.url])));
    const results = await Promise.all(victims.map((v) => getVia(v, 'p2p/app', blob.digest)));
    for (const r of results) assert.equal(r.digest, blob.digest);
    let corrupt = 0;
    for (const v of victims) corrupt += (await agentStatus(v)).totals.corruptPieces!;
    assert.ok(corrupt > 0, 'some victim received a corrupt piece from the liar and rejected it');
    assert.ok((await metric(scheduler.url, 'shoal_scheduler_blocklistings_total')) > 0, 'the scheduler blocklisted the liar');
    await Promise.all([liar, ...victims].map((p) => p.kill()));
  });

  it('an image manifest pulled through an agent starts swarm downloads of all its blobs (layer prefetch)', async () => {
    const img = buildBusyboxImage({ hello: `prefetch ${randomBytes(8).toString('hex')}\n` });
    await pushImage(registry.url, 'p2p/prefetch', 'v1', img);
    const blobs = allBlobs(img);
    // The busybox layer is shared with the first test's image, which every agent already holds.
    const held = new Set(allBlobs(image).map((b) => b.digest));
    const fresh = blobs.filter((b) => !held.has(b.digest));
    assert.ok(fresh.length >= 2 && fresh.length < blobs.length);
    const a = agents[7]!;
    const before = await metric(a.url, 'shoal_agent_prefetched_blobs_total');
    const done0 = (await agentStatus(a)).totals.completed!;
    const res = await request(`${a.url}/v2/p2p/prefetch/manifests/v1`, { headers: { accept: img.manifest.mediaType } });
    assert.equal(res.statusCode, 200);
    await res.body.arrayBuffer();
    assert.equal((await metric(a.url, 'shoal_agent_prefetched_blobs_total')) - before, fresh.length, 'config and every layer it lacks started');
    // Without any blob request, the agent ends up holding every blob: served from its disk.
    const deadline = Date.now() + 60_000;
    while ((await agentStatus(a)).totals.completed! - done0 < fresh.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const cached = await metric(a.url, 'shoal_agent_bytes_total{source="cache"}');
    for (const b of blobs) assert.equal((await getVia(a, 'p2p/prefetch', b.digest)).digest, b.digest);
    assert.equal((await metric(a.url, 'shoal_agent_bytes_total{source="cache"}')) - cached, blobs.reduce((n, b) => n + b.size, 0), 'every blob came from the prefetched copy');
    for (const b of blobs) assert.equal(registryBlobGets(registry.output, b.digest), 1, 'the seed fetched each blob once; the agent none');
  });

  it('peers killed mid-transfer do not stop the others', async () => {
    const blob = randomBlob(48 * 1024 * 1024);
    await pushBlob(registry.url, 'p2p/app', blob);
    const capped = ['--upload-limit', '12MiB', '--download-limit', '24MiB'];
    const fleet = await Promise.all([50, 51, 52, 53, 54, 55, 56, 57].map((n) => startRole('agent', `127.0.0.${n}:0`, ['--scheduler', scheduler.url, '--registry', registry.url, ...capped])));
    const pulls = fleet.map((a) => getVia(a, 'p2p/app', blob.digest).catch((err: Error) => ({ status: 0, digest: err.message, size: 0, headers: {} })));
    await new Promise((r) => setTimeout(r, 1200));
    const victims = fleet.slice(0, 3);
    await Promise.all(victims.map((v) => v.kill('SIGKILL')));
    const results = await Promise.all(pulls);
    for (const [i, r] of results.entries()) {
      if (i < 3) continue;
      assert.equal(r.status, 200);
      assert.equal(r.digest, blob.digest, `survivor ${fleet[i]!.host}`);
    }
    assert.equal(registryBlobGets(registry.output, blob.digest), 1, 'survivors did not go back to the registry');
    await Promise.all(fleet.slice(3).map((p) => p.kill()));
  });

  it('shoal preheat warms the seed (--scope seed) and then every agent (--scope all), with progress and a clear error for unknown images', async () => {
    const warm = buildBusyboxImage({ hello: `preheat ${randomBytes(8).toString('hex')}\n` });
    await pushImage(registry.url, 'p2p/warm', 'v1', warm);
    const blobs = allBlobs(warm);
    const { stdout } = await execFileP(process.execPath, [shoalBin, 'preheat', 'p2p/warm:v1', '--scope', 'seed', '--scheduler', scheduler.url, '--json'], { timeout: 60_000 });
    const status = JSON.parse(stdout.trim().split('\n').pop()!);
    assert.equal(status.state, 'done');
    assert.deepEqual(status.blobs.map((b: { digest: string }) => b.digest).sort(), blobs.map((b) => b.digest).sort());
    for (const b of blobs) assert.equal(registryBlobGets(registry.output, b.digest), 1, 'the seed fetched each blob once');
    const all = await execFileP(process.execPath, [shoalBin, 'preheat', 'p2p/warm:v1', '--scope', 'all', '--scheduler', scheduler.url, '--json'], { timeout: 120_000 });
    const allStatus = JSON.parse(all.stdout.trim().split('\n').pop()!);
    assert.equal(allStatus.state, 'done');
    for (const b of allStatus.blobs) assert.ok(b.agentsDone >= b.agentsTotal && b.agentsTotal >= 10, JSON.stringify(b));
    // Warm agents now answer from their disk.
    const before = await metric(agents[5]!.url, 'shoal_agent_bytes_total{source="cache"}');
    const got = await getVia(agents[5]!, 'p2p/warm', blobs[0]!.digest);
    assert.equal(got.digest, blobs[0]!.digest);
    assert.ok((await metric(agents[5]!.url, 'shoal_agent_bytes_total{source="cache"}')) > before);
    for (const b of blobs) assert.equal(registryBlobGets(registry.output, b.digest), 1, 'preheating all agents cost no extra registry traffic');
    await assert.rejects(execFileP(process.execPath, [shoalBin, 'preheat', 'p2p/warm:missing', '--scheduler', scheduler.url], { timeout: 30_000 }), (e: Error & { stderr?: string }) => /MANIFEST_UNKNOWN|404/.test(String(e.stderr)));
  });

  it('with the scheduler down, agents fall back to the registry and say so', async () => {
    const blob = randomBlob(3 * 1024 * 1024);
    await pushBlob(registry.url, 'p2p/app', blob);
    await scheduler.kill('SIGKILL');
    const a = agents[9]!;
    const before = await metric(a.url, 'shoal_agent_fallbacks_total');
    const got = await getVia(a, 'p2p/app', blob.digest);
    assert.equal(got.status, 200);
    assert.equal(got.digest, blob.digest);
    assert.equal((await metric(a.url, 'shoal_agent_fallbacks_total')) - before, 1);
    assert.ok((await agentStatus(a)).totals.fallbacks! >= 1);
    assert.ok(a.output.some((l) => l.includes('falling back to the registry')));
  });
});

describe('p2p privacy: a private registry (docker-registry with htpasswd) behind the agent', { skip: skipUnless(['docker-registry', 'htpasswd']) }, () => {
  let dir: string;
  let registry: Registry | undefined;
  let registryUrl: string;
  let scheduler: RoleProcess;
  let agent: RoleProcess;
  const blob = randomBlob(5 * 1024 * 1024);
  const basic = `Basic ${Buffer.from('ci:s3cret').toString('base64')}`;

  before(async () => {
    assertPrerequisites(['docker-registry', 'htpasswd']);
    dir = await tempDir('private-registry');
    await run(which('htpasswd')!, ['-Bbc', join(dir, 'htpasswd'), 'ci', 's3cret']);
    // Its own free port, a deadline, and the registry's output in the error if it does not come up.
    registry = await startDistribution({ htpasswd: { path: join(dir, 'htpasswd'), realm: 'shoal-test' } });
    registryUrl = registry.url;
    const res = await request(`${registryUrl}/v2/private/app/blobs/uploads/`, { method: 'POST', headers: { authorization: basic } });
    res.body.resume();
    const loc = String(res.headers.location);
    const put = await request(`${new URL(loc, registryUrl).href}${loc.includes('?') ? '&' : '?'}digest=${blob.digest}`, { method: 'PUT', body: blob.data, headers: { authorization: basic, 'content-type': 'application/octet-stream' } });
    put.body.resume();
    assert.equal(put.statusCode, 201);
    scheduler = await startRole('scheduler', '127.0.0.60:0', ['--registry', registryUrl]);
    await startRole('seed', '127.0.0.61:0', ['--scheduler', scheduler.url, '--registry', registryUrl, '--registry-username', 'ci', '--registry-password', 's3cret']);
    agent = await startRole('agent', '127.0.0.62:0', ['--scheduler', scheduler.url, '--registry', registryUrl]);
  });

  after(async () => {
    await stopAllRoles();
    await registry?.stop();
    await removeDir(dir);
  });

  it('refuses a caller without credentials (401 with the registry challenge), serves one with them', async () => {
    const anonymous = await getVia(agent, 'private/app', blob.digest);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /Basic realm="shoal-test"/);
    const wrong = await getVia(agent, 'private/app', blob.digest, { authorization: `Basic ${Buffer.from('ci:nope').toString('base64')}` });
    assert.equal(wrong.status, 401);
    const allowed = await getVia(agent, 'private/app', blob.digest, { authorization: basic });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.digest, blob.digest);
    // Cached now on the agent: still refused without credentials.
    const again = await getVia(agent, 'private/app', blob.digest);
    assert.equal(again.status, 401);
    assert.equal(again.size < 1000, true, 'no blob bytes leaked to the anonymous caller');
  });
});

describe('shoal all-in-one', () => {
  it('runs registry, scheduler, seed and agent in one process; a blob pushed to the registry comes out of the agent via the seed', async () => {
    const { spawn } = await import('node:child_process');
    const dir = await tempDir('all-in-one');
    const base = 30000 + Math.floor(Math.random() * 20000);
    const proc = spawn(process.execPath, [shoalBin, 'all-in-one', '--listen', `127.0.0.70:${base}`, '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const lines: string[] = [];
      proc.stdout!.on('data', (c: Buffer) => lines.push(c.toString()));
      for (let i = 0; i < 100 && !lines.join('').includes('"msg":"listening"'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(lines.join(''), /"agent":"127\.0\.0\.70:\d+"/);
      const blob = randomBlob(6 * 1024 * 1024);
      await pushBlob(`http://127.0.0.70:${base}`, 'aio/app', blob);
      const res = await request(`http://127.0.0.70:${base + 3}/v2/aio/app/blobs/${blob.digest}`);
      const body = Buffer.from(await res.body.arrayBuffer());
      assert.equal(res.statusCode, 200);
      assert.equal(sha(body), blob.digest);
      // Pieces are counted as they arrive, before they can be streamed out.
      assert.equal(await metric(`http://127.0.0.70:${base + 3}`, 'shoal_agent_bytes_total{source="seed"}'), blob.size, 'served through the swarm, not a fallback');
      assert.equal(await metric(`http://127.0.0.70:${base + 3}`, 'shoal_agent_fallbacks_total'), 0);
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      await removeDir(dir);
    }
  });
});
