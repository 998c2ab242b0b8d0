// Randomised: several clients push images sharing layers (HEAD-then-skip, like real clients),
// move and delete tags, while online GC (with untagged deletion) runs in a tight loop with a short
// grace window. Afterwards every tag the clients believe in must resolve to the digest they pushed,
// and every blob of that manifest must be readable with the right content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { startRegistry } from '../../src/server/registry-process.js';
import { loadServeConfig } from '../../src/server/config.js';
import { createLogger } from '../../src/server/logger.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('pushes and online GC race: nothing a committed manifest references is lost', async () => {
  const data = await mkdtemp(join(tmpdir(), 'shoal-gc-race-'));
  const config = loadServeConfig({
    listen: '127.0.0.1:0', data, logLevel: 'silent', maxManifestSize: '4MiB', maxBlobSize: '1GiB',
    manifestCacheSize: '8MiB', manifestCacheTtl: '10s', gcInterval: 'off', gcGrace: '500ms', gcDeleteUntagged: true, uploadTtl: '1h',
  });
  const reg = await startRegistry(config, createLogger('silent', { sync: true }));
  const base = `http://${reg.address}`;
  let stop = false;
  let gcLoop: Promise<void> = Promise.resolve();
  const stats = { uploadRetries: 0, pushes: 0, refusedThenRetried: 0, gcPasses: 0, blobsDeleted: 0, manifestsDeleted: 0 };
  try {
    // A shared pool of layers, so GC candidates and pushes overlap constantly.
    const layers = Array.from({ length: 12 }, () => randomBytes(1024 + Math.floor(Math.random() * 4096)));
    const believed = new Map<string, string>(); // "repo:tag" -> manifest digest
    gcLoop = (async () => {
      while (!stop) {
        const r = await reg.gc.run({ deleteUntagged: true, uploadTtlMs: 60_000 });
        stats.gcPasses++;
        stats.blobsDeleted += r.blobsDeleted;
        stats.manifestsDeleted += r.manifestsDeleted;
        await new Promise((res) => setTimeout(res, 5 + Math.random() * 20));
      }
    })();

    async function ensureBlob(repo: string, blob: Buffer): Promise<void> {
      const digest = sha(blob);
      const head = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
      if (head.status === 200) return; // a client skips the upload: the HEAD must protect the blob
      // On a starved machine finishing can outlast the grace window: the registry then
      // answers 503 (nothing visible) and a client uploads again, as real clients do.
      for (let attempt = 0; ; attempt++) {
        const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(blob), headers: { 'Content-Type': 'application/octet-stream' } });
        if (res.status === 503 && attempt < 5) {
          stats.uploadRetries++;
          continue;
        }
        assert.equal(res.status, 201, await res.text());
        return;
      }
    }

    async function push(repo: string, tag: string, layerIdx: number[], pauseMs: number): Promise<void> {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') }));
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
        layers: layerIdx.map((i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layers[i]!), size: layers[i]!.length })),
      }));
      for (let attempt = 0; attempt < 10; attempt++) {
        await ensureBlob(repo, config);
        for (const i of layerIdx) await ensureBlob(repo, layers[i]!);
        // Sometimes longer than the grace window: then GC may legitimately take the blobs and the
        // registry must refuse the manifest (MANIFEST_BLOB_UNKNOWN), never accept a dangling one.
        await new Promise((r) => setTimeout(r, attempt === 0 ? pauseMs : 0));
        const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: new Uint8Array(manifest), headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
        if (res.status === 201) {
          believed.set(`${repo}:${tag}`, res.headers.get('docker-content-digest')!);
          stats.pushes++;
          return;
        }
        const body = await res.json() as { errors: Array<{ code: string }> };
        assert.equal(res.status, 400);
        assert.equal(body.errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN');
        stats.refusedThenRetried++;
      }
      assert.fail(`push of ${repo}:${tag} was refused 10 times`);
    }

    const op = fc.record({
      repo: fc.constantFrom('team/a', 'team/b', 'c'),
      tag: fc.constantFrom('t1', 't2', 't3'),
      layers: fc.uniqueArray(fc.integer({ min: 0, max: layers.length - 1 }), { minLength: 1, maxLength: 4 }),
      pauseMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 550, max: 800 })),
      deleteAfter: fc.boolean(),
    });
    const workers = Array.from({ length: 4 }, (_, w) => fc.sample(op, { numRuns: 14, seed: 1000 + w }));
    await Promise.all(
      workers.map(async (ops, w) => {
        for (const o of ops) {
          const tag = `${o.tag}-w${w}`; // each worker owns its tags, so "believed" is exact
          await push(o.repo, tag, o.layers, o.pauseMs);
          if (o.deleteAfter && Math.random() < 0.3) {
            const res = await fetch(`${base}/v2/${o.repo}/manifests/${tag}`, { method: 'DELETE' });
            assert.equal(res.status, 202);
            believed.delete(`${o.repo}:${tag}`);
          }
        }
      }),
    );
    stop = true;
    await gcLoop;
    // Let the grace window pass and collect hard, then verify.
    await new Promise((r) => setTimeout(r, 600));
    const final = await reg.gc.run({ deleteUntagged: true, uploadTtlMs: 60_000 });
    stats.blobsDeleted += final.blobsDeleted;

    assert.ok(believed.size > 0);
    for (const [key, digest] of believed) {
      const [repo, tag] = key.split(':') as [string, string];
      const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`);
      assert.equal(res.status, 200, `${key} lost`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(sha(body), digest);
      const m = JSON.parse(body.toString());
      for (const desc of [m.config, ...m.layers]) {
        const blob = await fetch(`${base}/v2/${repo}/blobs/${desc.digest}`);
        assert.equal(blob.status, 200, `${key}: blob ${desc.digest} lost`);
        assert.equal(sha(Buffer.from(await blob.arrayBuffer())), desc.digest);
      }
    }
    assert.ok(stats.gcPasses > 10, 'GC really ran concurrently');
    assert.ok(stats.blobsDeleted > 0, 'GC really reclaimed something during the race');
    console.log(`# gc race: ${JSON.stringify(stats)}`);
  } finally {
    stop = true;
    await gcLoop.catch(() => undefined);
    await reg.close();
    await rm(data, { recursive: true, force: true });
  }
});
