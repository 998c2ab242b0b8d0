import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { FilesystemBlobStore } from '../../../src/storage/filesystem.js';
import { digestOf } from '../../../src/oci/digest.js';
import { describeBlobStore } from './blob-store.suite.js';

describeBlobStore('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'shoal-fs-'));
  return {
    store: await new FilesystemBlobStore(root).init(),
    reopen: () => new FilesystemBlobStore(root).init(),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

it('filesystem: writes go through tmp/ and leave no temp files behind', async () => {
  const root = await mkdtemp(join(tmpdir(), 'shoal-fs-'));
  try {
    const store = await new FilesystemBlobStore(root).init();
    const data = Buffer.from('manifest bytes');
    await store.put(digestOf(data), data);
    await assert.rejects(store.put(digestOf('x'), Buffer.from('y')));
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    const hex = digestOf(data).slice(7);
    assert.deepEqual(await readdir(join(root, 'blobs', 'sha256', hex.slice(0, 2))), [hex]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
