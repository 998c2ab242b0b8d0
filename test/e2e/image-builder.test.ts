// The engine-less image builder (test/support/image.ts) checked by real
// tools: GNU tar reads its archives, umoci unpacks its layout (verifying
// digests and diff_ids), skopeo copies it oci:→oci: without changing a digest.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  DEFAULT_HELLO,
  buildBusyboxImage,
  buildMultiArchIndex,
  busyboxBinary,
  readOciLayout,
  sha256,
  tar,
  untar,
  writeOciLayout,
} from '../support/image.js';
import { makeSkopeo } from '../support/skopeo.js';
import { assertPrerequisites, inCI, once, removeDir, run, skipUnless, tempDir, which } from '../support/tools.js';

const TOOLS = ['tar', 'umoci', 'skopeo'];

describe('engine-less OCI image builder', { skip: skipUnless(TOOLS) }, () => {
  let work = '';
  const img = buildBusyboxImage();
  const multi = buildMultiArchIndex({ hello: 'multi\n' });
  const setup = once(async () => {
    assertPrerequisites(TOOLS);
    work = await tempDir('builder');
    await writeOciLayout(join(work, 'oci'), [
      { tag: 'app', target: img },
      { tag: 'multi', target: multi },
    ]);
  });
  after(async () => removeDir(work));

  test('digests, sizes and diff_ids are consistent', async () => {
    await setup();
    for (const l of img.layers) {
      assert.equal(sha256(l.data), l.digest);
      assert.equal(l.data.length, l.size);
      assert.equal(sha256(gunzipSync(l.data)), l.diffId);
    }
    const manifest = JSON.parse(img.manifest.data.toString('utf8'));
    assert.equal(manifest.config.digest, sha256(img.config.data));
    assert.deepEqual(JSON.parse(img.config.data.toString('utf8')).rootfs.diff_ids, img.layers.map((l) => l.diffId));
    const index = JSON.parse(multi.index.data.toString('utf8'));
    assert.deepEqual(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ['amd64', 'arm64'],
    );
    assert.notEqual(multi.images[0]!.config.digest, multi.images[1]!.config.digest, 'configs differ');
    assert.deepEqual(
      multi.images[0]!.layers.map((l) => l.digest),
      multi.images[1]!.layers.map((l) => l.digest),
      'layers are shared',
    );
    // Reproducible.
    assert.equal(buildBusyboxImage().manifest.digest, img.manifest.digest);
  });

  test('GNU tar reads the archives: types, modes, symlinks, long paths', async () => {
    await setup();
    const longPath = 'a'.repeat(60) + '/' + 'b'.repeat(60) + '/' + 'c'.repeat(90) + '.txt';
    const archive = tar([
      { type: 'dir', path: 'd', mode: 0o750 },
      { type: 'file', path: 'd/x.sh', data: '#!/bin/sh\n', mode: 0o755 },
      { type: 'symlink', path: 'd/link', target: 'x.sh' },
      { type: 'file', path: longPath, data: 'long\n' },
      { type: 'file', path: 'empty', data: '' },
    ]);
    const file = join(work, 't.tar');
    writeFileSync(file, archive);
    const listing = (await run('tar', ['-tvf', file])).stdout.trim().split('\n');
    assert.match(listing[0]!, /^drwxr-x--- root\/root\s+0 .* d\/$/);
    assert.match(listing[1]!, /^-rwxr-xr-x root\/root\s+10 .* d\/x\.sh$/);
    assert.match(listing[2]!, /^lrwxrwxrwx root\/root\s+0 .* d\/link -> x\.sh$/);
    assert.ok(listing[3]!.endsWith(longPath), listing[3]);
    const out = join(work, 'x');
    await run('mkdir', ['-p', out]);
    await run('tar', ['-xf', file, '-C', out]);
    assert.equal(readFileSync(join(out, longPath), 'utf8'), 'long\n');
    assert.equal(readlinkSync(join(out, 'd/link')), 'x.sh');
    // Our reader agrees.
    assert.deepEqual(
      untar(archive).map((e) => e.path),
      ['d/', 'd/x.sh', 'd/link', longPath, 'empty'],
    );
  });

  test('umoci unpacks the layout into the expected rootfs', { skip: !inCI && !which('umoci') ? 'no umoci' : false }, async () => {
    await setup();
    const bundle = join(work, 'bundle');
    await run('umoci', ['unpack', ...(process.geteuid?.() === 0 ? [] : ['--rootless']), '--image', `${join(work, 'oci')}:app`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(readFileSync(join(rootfs, 'hello.txt'), 'utf8'), DEFAULT_HELLO);
    assert.ok(readFileSync(join(rootfs, 'bin/busybox')).equals(busyboxBinary()));
    assert.equal(lstatSync(join(rootfs, 'bin/busybox')).mode & 0o777, 0o755);
    for (const l of ['sh', 'cat', 'echo']) assert.equal(readlinkSync(join(rootfs, 'bin', l)), 'busybox');
    assert.equal(lstatSync(join(rootfs, 'tmp')).mode & 0o7777, 0o1777);
    const res = await run(join(rootfs, 'bin/sh'), ['-c', `cat ${join(rootfs, 'hello.txt')}`]);
    assert.equal(res.stdout, DEFAULT_HELLO);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    assert.deepEqual(config.process.args, ['/bin/sh', '-c', 'cat /hello.txt']);
  });

  test('skopeo copies the layout (single image and index) without changing a digest', async () => {
    await setup();
    const skopeo = await makeSkopeo(work);
    const out = join(work, 'copy');
    await skopeo.run(['copy', `oci:${join(work, 'oci')}:app`, `oci:${out}:app`]);
    await skopeo.run(['copy', '--all', `oci:${join(work, 'oci')}:multi`, `oci:${out}:multi`]);
    const layout = readOciLayout(out);
    assert.equal(layout.resolve('app').digest, img.manifest.digest);
    assert.equal(layout.resolve('multi').digest, multi.index.digest);
    for (const child of multi.images) assert.ok(layout.blob(child.manifest.digest).equals(child.manifest.data));
  });
});
