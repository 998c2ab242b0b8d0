// skopeo ↔ Shoal: push an engine-less OCI layout, pull it back, inspect,
// multi-arch with --all, pull by digest, registry-to-registry copy (mount),
// delete. Digests must survive every round trip byte for byte.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  MEDIA,
  buildBusyboxImage,
  buildMultiArchIndex,
  busyboxLayer,
  fetchBlob,
  fetchManifest,
  makeImage,
  makeLayer,
  readOciLayout,
  sha256,
  writeOciLayout,
  type BuiltImage,
} from '../support/image.js';
import { makeSkopeo, type Skopeo } from '../support/skopeo.js';
import { startRegistry, type Registry } from '../support/target.js';
import { assertPrerequisites, killLeftovers, once, removeDir, skipUnless, tempDir, withServerLog } from '../support/tools.js';

const TOOLS = ['skopeo'];

describe('skopeo with shoal', { skip: skipUnless(TOOLS) }, () => {
  let reg: Registry | undefined;
  let work = '';
  const img = buildBusyboxImage({ hello: 'hello from the skopeo e2e test\n' });
  const multi = buildMultiArchIndex({ hello: 'hello from the skopeo multi-arch test\n' });
  // Overwrites e2e/app:1 in the last test.
  const img2 = buildBusyboxImage({ hello: 'the second image under the same tag\n' });
  // About 16 MiB of incompressible data: a streamed upload of more than a few chunks.
  const big = makeImage([busyboxLayer(), makeLayer([{ type: 'file', path: 'big.bin', data: randomBytes(16 << 20) }])]);
  const logged = (fn: () => Promise<void>) =>
    withServerLog(
      () => reg?.output,
      async () => {
        await setup();
        await fn();
      },
    );
  let src = '';

  const setup = once(async () => {
    assertPrerequisites(TOOLS);
    work = await tempDir('skopeo');
    src = join(work, 'src');
    await writeOciLayout(src, [
      { tag: 'app', target: img },
      { tag: 'multi', target: multi },
      { tag: 'app2', target: img2 },
      { tag: 'big', target: big },
    ]);
    reg = await startRegistry();
  });

  after(async () => {
    killLeftovers();
    await reg?.stop();
    await removeDir(work);
  });

  /** A skopeo with its own, empty blob-info cache. */
  const freshSkopeo = (): Promise<Skopeo> => makeSkopeo(work);

  async function expectImageInRegistry(repo: string, ref: string, image: BuiltImage): Promise<void> {
    const m = await fetchManifest(reg!.url, repo, ref);
    assert.equal(m.digest, image.manifest.digest, `GET /v2/${repo}/manifests/${ref}: body digest`);
    assert.ok(m.data.equals(image.manifest.data), 'manifest bytes are preserved exactly');
    assert.equal(m.mediaType, MEDIA.ociManifest, 'Content-Type of the manifest');
    assert.equal(m.headerDigest, image.manifest.digest, 'Docker-Content-Digest header');
    for (const b of [image.config, ...image.layers]) {
      const data = await fetchBlob(reg!.url, repo, b.digest);
      assert.equal(data.length, b.size, `blob ${b.digest} size`);
    }
  }

  test(
    'push a single-arch image from an OCI layout (oci: → docker://)',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const digestFile = join(work, 'push-app.digest');
      await skopeo.run([
        'copy', '--dest-tls-verify=false', '--digestfile', digestFile,
        `oci:${src}:app`, `docker://${reg!.host}/e2e/app:1`,
      ]);
      assert.equal((await readFile(digestFile, 'utf8')).trim(), img.manifest.digest, 'skopeo --digestfile');
      await expectImageInRegistry('e2e/app', '1', img);
      await expectImageInRegistry('e2e/app', img.manifest.digest, img);
    }),
  );

  test(
    'skopeo inspect and list-tags',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const ref = `docker://${reg!.host}/e2e/app:1`;
      const info = JSON.parse((await skopeo.run(['inspect', '--tls-verify=false', ref])).stdout);
      assert.equal(info.Digest, img.manifest.digest);
      assert.equal(info.Architecture, 'amd64');
      assert.equal(info.Os, 'linux');
      assert.deepEqual(info.Layers, img.layers.map((l) => l.digest));
      assert.ok(Array.isArray(info.RepoTags) && info.RepoTags.includes('1'), `RepoTags: ${JSON.stringify(info.RepoTags)}`);

      const raw = (await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref])).stdout;
      assert.equal(sha256(raw), img.manifest.digest, 'inspect --raw returns the pushed manifest bytes');
      const rawConfig = (await skopeo.run(['inspect', '--config', '--raw', '--tls-verify=false', ref])).stdout;
      assert.equal(sha256(rawConfig), img.config.digest, 'inspect --config --raw returns the pushed config bytes');

      const tags = JSON.parse((await skopeo.run(['list-tags', '--tls-verify=false', `docker://${reg!.host}/e2e/app`])).stdout);
      assert.deepEqual(tags.Tags, ['1']);
    }),
  );

  test(
    'pull the image back into a new OCI layout (docker:// → oci:), by tag and by digest',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const out = join(work, 'back');
      await skopeo.run(['copy', '--src-tls-verify=false', `docker://${reg!.host}/e2e/app:1`, `oci:${out}:back`]);
      await skopeo.run([
        'copy', '--src-tls-verify=false',
        `docker://${reg!.host}/e2e/app@${img.manifest.digest}`, `oci:${out}:bydigest`,
      ]);
      const layout = readOciLayout(out);
      for (const tag of ['back', 'bydigest']) {
        const d = layout.resolve(tag);
        assert.equal(d.digest, img.manifest.digest, `${tag}: manifest digest preserved`);
        assert.equal(d.mediaType, MEDIA.ociManifest);
      }
      const manifest = layout.json(img.manifest.digest);
      assert.equal(manifest.config.digest, img.config.digest);
      for (const l of img.layers) assert.ok(layout.blob(l.digest).equals(l.data), `layer ${l.digest} bytes`);
      assert.ok(layout.blob(img.config.digest).equals(img.config.data), 'config bytes');
    }),
  );

  test(
    'multi-arch index with --all: index digest and both child digests preserved',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const digestFile = join(work, 'push-multi.digest');
      await skopeo.run([
        'copy', '--all', '--dest-tls-verify=false', '--digestfile', digestFile,
        `oci:${src}:multi`, `docker://${reg!.host}/e2e/multi:1`,
      ]);
      assert.equal((await readFile(digestFile, 'utf8')).trim(), multi.index.digest, 'skopeo --digestfile');

      const top = await fetchManifest(reg!.url, 'e2e/multi', '1');
      assert.equal(top.digest, multi.index.digest, 'index digest');
      assert.ok(top.data.equals(multi.index.data), 'index bytes preserved');
      assert.equal(top.mediaType, MEDIA.ociIndex, 'Content-Type of the index');
      assert.equal(top.headerDigest, multi.index.digest, 'Docker-Content-Digest of the index');
      for (const child of multi.images) await expectImageInRegistry('e2e/multi', child.manifest.digest, child);

      const ref = `docker://${reg!.host}/e2e/multi:1`;
      const raw = (await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref])).stdout;
      assert.equal(sha256(raw), multi.index.digest);
      const arm = JSON.parse(
        (await skopeo.run(['inspect', '--tls-verify=false', '--override-arch', 'arm64', '--override-variant', 'v8', ref])).stdout,
      );
      assert.equal(arm.Architecture, 'arm64', 'platform selection through the index');
      assert.deepEqual(arm.Layers, multi.images[1]!.layers.map((l) => l.digest));

      // Back with --all: the whole index.
      const out = join(work, 'multi-back');
      await skopeo.run(['copy', '--all', '--src-tls-verify=false', ref, `oci:${out}:multi`]);
      const layout = readOciLayout(out);
      const d = layout.resolve('multi');
      assert.equal(d.digest, multi.index.digest, 'index digest preserved on the way back');
      const index = layout.json(multi.index.digest);
      assert.deepEqual(
        index.manifests.map((m: { digest: string }) => m.digest),
        multi.images.map((i) => i.manifest.digest),
        'child digests preserved',
      );
      for (const child of multi.images) {
        assert.ok(layout.blob(child.manifest.digest).equals(child.manifest.data));
        assert.ok(layout.blob(child.config.digest).equals(child.config.data));
      }

      // Back without --all: skopeo picks linux/amd64 from the index.
      const single = join(work, 'multi-amd64');
      await skopeo.run(['copy', '--src-tls-verify=false', '--override-arch', 'amd64', ref, `oci:${single}:amd64`]);
      assert.equal(readOciLayout(single).resolve('amd64').digest, multi.images[0]!.manifest.digest);
    }),
  );

  test(
    'Docker schema 2 (skopeo --format v2s2): image and manifest list keep their media types and digests',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const single = join(work, 'v2s2.digest');
      await skopeo.run([
        'copy', '--format', 'v2s2', '--dest-tls-verify=false', '--digestfile', single,
        `oci:${src}:app`, `docker://${reg!.host}/e2e/app-docker:1`,
      ]);
      const digest = (await readFile(single, 'utf8')).trim();
      const m = await fetchManifest(reg!.url, 'e2e/app-docker', '1');
      assert.equal(m.mediaType, MEDIA.dockerManifest, 'Content-Type of a schema 2 manifest');
      assert.equal(m.digest, digest, 'served bytes hash to the digest skopeo pushed');
      assert.equal(m.headerDigest, digest);
      assert.equal(m.json.config.digest, img.config.digest, 'the config is unchanged by the conversion');
      for (const l of m.json.layers as Array<{ digest: string }>) await fetchBlob(reg!.url, 'e2e/app-docker', l.digest);
      const ref = `docker://${reg!.host}/e2e/app-docker:1`;
      assert.equal(sha256((await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref])).stdout), digest);

      const list = join(work, 'v2s2-list.digest');
      await skopeo.run([
        'copy', '--all', '--format', 'v2s2', '--dest-tls-verify=false', '--digestfile', list,
        `oci:${src}:multi`, `docker://${reg!.host}/e2e/multi-docker:1`,
      ]);
      const listDigest = (await readFile(list, 'utf8')).trim();
      const top = await fetchManifest(reg!.url, 'e2e/multi-docker', '1');
      assert.equal(top.mediaType, MEDIA.dockerList, 'Content-Type of a manifest list');
      assert.equal(top.digest, listDigest);
      assert.equal(top.headerDigest, listDigest);
      for (const child of top.json.manifests as Array<{ digest: string; mediaType: string }>) {
        assert.equal(child.mediaType, MEDIA.dockerManifest);
        const c = await fetchManifest(reg!.url, 'e2e/multi-docker', child.digest);
        assert.equal(c.digest, child.digest);
        assert.equal(c.mediaType, MEDIA.dockerManifest);
      }
      // And back: the list round-trips through an OCI layout as an OCI index of the same images.
      const out = join(work, 'multi-docker-back');
      await skopeo.run(['copy', '--all', '--src-tls-verify=false', `docker://${reg!.host}/e2e/multi-docker:1`, `oci:${out}:x`]);
      const index = readOciLayout(out);
      const back = index.json(index.resolve('x').digest);
      assert.equal(back.manifests.length, 2);
    }),
  );

  test(
    'registry-to-registry copy into another repository (cross-repo mount) keeps the digest',
    logged(async () => {
      // One skopeo for pull and copy: its cache learns where the blobs live, so
      // the copy asks the registry to mount them from e2e/app.
      const skopeo = await freshSkopeo();
      await skopeo.run(['copy', '--src-tls-verify=false', `docker://${reg!.host}/e2e/app:1`, `oci:${join(work, 'warm')}:x`]);
      const digestFile = join(work, 'copy.digest');
      await skopeo.run([
        'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--digestfile', digestFile,
        `docker://${reg!.host}/e2e/app:1`, `docker://${reg!.host}/e2e/app-copy:1`,
      ]);
      assert.equal((await readFile(digestFile, 'utf8')).trim(), img.manifest.digest);
      await expectImageInRegistry('e2e/app-copy', '1', img);
    }),
  );

  test(
    'skopeo delete removes the manifest',
    logged(async () => {
      const skopeo = await freshSkopeo();
      await skopeo.run(['delete', '--tls-verify=false', `docker://${reg!.host}/e2e/app-copy:1`]);
      const res = await fetch(`${reg!.url}/v2/e2e/app-copy/manifests/${img.manifest.digest}`, {
        headers: { accept: MEDIA.ociManifest },
      });
      await res.arrayBuffer();
      assert.equal(res.status, 404, 'manifest by digest after delete');
      const tag = await fetch(`${reg!.url}/v2/e2e/app-copy/manifests/1`, { headers: { accept: MEDIA.ociManifest } });
      await tag.arrayBuffer();
      assert.equal(tag.status, 404, 'tag after deleting the manifest it pointed to');
      // The original repository is untouched.
      await expectImageInRegistry('e2e/app', '1', img);
    }),
  );

  test(
    'a 16 MiB layer survives push and pull byte for byte',
    logged(async () => {
      const skopeo = await freshSkopeo();
      await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${src}:big`, `docker://${reg!.host}/e2e/big:1`]);
      await expectImageInRegistry('e2e/big', '1', big);
      const out = join(work, 'big-back');
      await skopeo.run(['copy', '--src-tls-verify=false', `docker://${reg!.host}/e2e/big:1`, `oci:${out}:big`]);
      const layout = readOciLayout(out);
      assert.equal(layout.resolve('big').digest, big.manifest.digest);
      assert.ok(layout.blob(big.layers[1]!.digest).equals(big.layers[1]!.data));
    }),
  );

  test(
    'pushing another image under an existing tag moves the tag; the old manifest stays reachable by digest',
    logged(async () => {
      const skopeo = await freshSkopeo();
      const ref = `docker://${reg!.host}/e2e/app:1`;
      // Warm whatever the server caches for the tag.
      assert.equal(sha256((await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref])).stdout), img.manifest.digest);
      await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${src}:app2`, ref]);
      assert.equal(sha256((await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref])).stdout), img2.manifest.digest);
      await expectImageInRegistry('e2e/app', '1', img2);
      await expectImageInRegistry('e2e/app', img.manifest.digest, img);
      const head = await fetch(`${reg!.url}/v2/e2e/app/manifests/1`, { method: 'HEAD', headers: { accept: MEDIA.ociManifest } });
      assert.equal(head.headers.get('docker-content-digest'), img2.manifest.digest, 'HEAD by tag after the overwrite');
      const tags = JSON.parse((await skopeo.run(['list-tags', '--tls-verify=false', `docker://${reg!.host}/e2e/app`])).stdout);
      assert.deepEqual(tags.Tags, ['1']);
    }),
  );
});
