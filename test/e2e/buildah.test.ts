// buildah ↔ Shoal: build a Dockerfile FROM an image in Shoal (COPY + RUN),
// push the result to Shoal, then check the new layer's contents through the
// registry API, pull it with skopeo and run it with containerd.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { MEDIA, buildBusyboxImage, fetchBlob, fetchManifest, pushImage, readOciLayout, untar } from '../support/image.js';
import { makeSkopeo } from '../support/skopeo.js';
import { startRegistry, type Registry } from '../support/target.js';
import {
  assertPrerequisites,
  inCI,
  isolateContainersPaths,
  killLeftovers,
  once,
  removeDir,
  run,
  skipUnless,
  tempDir,
  which,
  withServerLog,
} from '../support/tools.js';

const TOOLS = ['buildah', 'runc'];

describe('buildah with shoal', { skip: skipUnless(TOOLS, { root: true }) }, () => {
  let reg: Registry | undefined;
  let work = '';
  let iso: Awaited<ReturnType<typeof isolateContainersPaths>> | undefined;
  let ctrd: Containerd | undefined;
  const hello = 'hello from the buildah base image\n';
  const added = 'added by COPY in the buildah e2e test\n';
  const base = buildBusyboxImage({ hello });
  const logged = (fn: () => Promise<void>) =>
    withServerLog(
      () => reg?.output,
      async () => {
        await setup();
        await fn();
      },
    );
  let builtRef = '';
  let builtDigest = '';

  function buildah(args: string[]) {
    const bin = which('buildah')!;
    const global = ['--root', join(work, 'root'), '--runroot', join(work, 'runroot'), '--storage-driver', 'vfs'];
    const [cmd, argv] = iso!.prefix(bin, [...global, ...args]);
    return run(cmd, argv, { timeoutMs: 100_000, env: { TMPDIR: '/var/tmp', XDG_RUNTIME_DIR: join(work, 'xdg') } });
  }

  const setup = once(async () => {
    assertPrerequisites(TOOLS, { root: true });
    work = await tempDir('buildah');
    iso = await isolateContainersPaths(work);
    reg = await startRegistry();
    await pushImage(reg.url, 'e2e/app', '1', base);
    builtRef = `${reg.host}/e2e/built:1`;
  });

  after(async () => {
    await ctrd?.stop().catch((e) => console.error('containerd stop:', e));
    killLeftovers();
    await reg?.stop();
    await removeDir(work);
    await iso?.cleanup();
  });

  test(
    'buildah bud FROM an image in shoal (COPY + RUN) and push the result to shoal',
    logged(async () => {
      const ctx = join(work, 'context');
      await mkdir(ctx, { recursive: true });
      await writeFile(join(ctx, 'added.txt'), added);
      await writeFile(
        join(ctx, 'Dockerfile'),
        [
          `FROM ${reg!.host}/e2e/app:1`,
          'COPY added.txt /added.txt',
          'RUN echo ran > /ran.txt && cat /hello.txt > /hello-copy.txt',
          'CMD ["/bin/sh", "-c", "cat /hello.txt /added.txt /ran.txt"]',
          '',
        ].join('\n'),
      );
      await buildah([
        'bud', '--tls-verify=false', '--network', 'none', '--format', 'oci',
        '-f', join(ctx, 'Dockerfile'), '-t', builtRef, ctx,
      ]);
      const digestFile = join(work, 'built.digest');
      await buildah(['push', '--tls-verify=false', '--digestfile', digestFile, builtRef]);
      builtDigest = (await readFile(digestFile, 'utf8')).trim();
      assert.match(builtDigest, /^sha256:[0-9a-f]{64}$/);

      const m = await fetchManifest(reg!.url, 'e2e/built', '1');
      assert.equal(m.digest, builtDigest, 'sha256 of the served manifest = buildah --digestfile');
      assert.equal(m.headerDigest, builtDigest, 'Docker-Content-Digest');
      assert.equal(m.mediaType, MEDIA.ociManifest);
      const manifest = m.json as { config: { digest: string }; layers: Array<{ digest: string; mediaType: string }> };
      const config = JSON.parse((await fetchBlob(reg!.url, 'e2e/built', manifest.config.digest)).toString('utf8'));
      const diffIds: string[] = config.rootfs.diff_ids;
      assert.deepEqual(diffIds.slice(0, 2), base.layers.map((l) => l.diffId), 'the base layers come first, unchanged');
      assert.ok(diffIds.length >= 3, `a new layer on top: ${JSON.stringify(diffIds)}`);
      assert.equal(manifest.layers.length, diffIds.length);
      assert.deepEqual(config.config.Cmd, ['/bin/sh', '-c', 'cat /hello.txt /added.txt /ran.txt']);

      // The new layer(s) hold what COPY and RUN made.
      const files = new Map<string, string>();
      for (const l of manifest.layers.slice(2)) {
        const blob = await fetchBlob(reg!.url, 'e2e/built', l.digest);
        const tarball = l.mediaType.endsWith('+gzip') ? gunzipSync(blob) : blob;
        for (const e of untar(tarball)) if (e.type === 'file') files.set(e.path.replace(/^\.?\//, ''), e.data.toString('utf8'));
      }
      assert.equal(files.get('added.txt'), added, `COPY result in the new layer; files: ${[...files.keys()].join(', ')}`);
      assert.equal(files.get('ran.txt'), 'ran\n', 'RUN result in the new layer');
      assert.equal(files.get('hello-copy.txt'), hello, 'RUN saw the base layers');
    }),
  );

  test(
    'skopeo pulls the built image with its digest intact',
    { skip: !inCI && !which('skopeo') ? 'skopeo not installed' : false },
    logged(async () => {
      assert.ok(builtDigest, 'needs the build test');
      const skopeo = await makeSkopeo(work);
      const out = join(work, 'built-oci');
      await skopeo.run(['copy', '--src-tls-verify=false', `docker://${builtRef}`, `oci:${out}:built`]);
      const layout = readOciLayout(out);
      assert.equal(layout.resolve('built').digest, builtDigest);
      const manifest = layout.json(builtDigest);
      for (const l of manifest.layers) layout.blob(l.digest);
    }),
  );

  test(
    'containerd pulls and runs the built image',
    { skip: !inCI && (!which('containerd') || !which('ctr')) ? 'containerd not installed' : false },
    logged(async () => {
      assert.ok(builtDigest, 'needs the build test');
      ctrd = await startContainerd();
      await ctrd.pull(builtRef);
      const res = await ctrd.runContainer(builtRef, 'built1');
      assert.equal(res.stdout, hello + added + 'ran\n');
    }),
  );
});
