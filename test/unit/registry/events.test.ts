import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStores } from '../../../src/server/registry-process.js';
import { digestOf } from '../../../src/oci/digest.js';

test('service publishes manifest.pushed, tag.deleted and manifest.deleted after each commit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-events-'));
  const service = await openStores({ data: dir, maxManifestSize: 4 << 20, maxBlobSize: 1 << 30, manifestCacheSize: 1 << 20, manifestCacheTtl: 1000, gcGrace: 1000 });
  try {
    const seen: string[] = [];
    service.events.on('manifest.pushed', () => {
      throw new Error('a broken listener must not fail the push');
    });
    service.events.on('manifest.pushed', (e) => seen.push(`pushed ${e.repo} ${e.tags.join(',')} ${e.digest === digest}`));
    service.events.on('tag.deleted', (e) => seen.push(`untagged ${e.tag}`));
    service.events.on('manifest.deleted', (e) => seen.push(`deleted ${e.digest === digest}`));
    const config = Buffer.from('{}');
    const cfgDigest = digestOf(config);
    const id = await service.startUpload('team/app');
    const { Readable } = await import('node:stream');
    await service.finishUpload('team/app', id, cfgDigest, { body: Readable.from([config]), opts: {} });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length }, layers: [] }));
    const digest = digestOf(manifest);
    await service.putManifest('team/app', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json', []);
    await service.deleteManifest('team/app', 'v1');
    await service.deleteManifest('team/app', digest);
    assert.deepEqual(seen, ['pushed team/app v1 true', 'untagged v1', 'deleted true']);
  } finally {
    await service.meta.close();
    await rm(dir, { recursive: true, force: true });
  }
});
