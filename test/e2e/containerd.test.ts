// containerd (ctr) ↔ Shoal: a private containerd pulls images that the test
// pushed over HTTP (by tag, by digest, an OCI index, a Docker manifest list)
// and runs them: the container prints the /hello.txt baked into the image.
// Then ctr itself pushes an imported image and pulls it back.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startContainerd, type Containerd } from '../support/containerd.js';
import { buildBusyboxImage, buildMultiArchIndex, fetchBlob, fetchManifest, ociArchive, pushImage } from '../support/image.js';
import { startRegistry, type Registry } from '../support/target.js';
import { assertPrerequisites, killLeftovers, once, skipUnless, withServerLog } from '../support/tools.js';

const TOOLS = ['containerd', 'ctr', 'runc'];

describe('containerd with shoal', { skip: skipUnless(TOOLS, { root: true }) }, () => {
  let reg: Registry | undefined;
  let ctrd: Containerd | undefined;
  const hello = 'hello from the containerd e2e test\n';
  const img = buildBusyboxImage({ hello });
  const multiHello = 'hello from the containerd multi-arch test\n';
  const multi = buildMultiArchIndex({ hello: multiHello });
  const dockerHello = 'hello from the containerd docker-format test\n';
  const dockerList = buildMultiArchIndex({ hello: dockerHello, format: 'docker' });
  const logged = (fn: () => Promise<void>) =>
    withServerLog(
      () => [...(reg?.output ?? []), '--- containerd ---', ...(ctrd?.output.slice(-20) ?? [])],
      async () => {
        await setup();
        await fn();
      },
    );

  const setup = once(async () => {
    assertPrerequisites(TOOLS, { root: true });
    reg = await startRegistry();
    await pushImage(reg.url, 'e2e/app', '1', img);
    await pushImage(reg.url, 'e2e/multi', '1', multi);
    await pushImage(reg.url, 'e2e/docker', '1', dockerList);
    ctrd = await startContainerd();
  });

  after(async () => {
    // Each step on its own, so that one failure does not leave the others running.
    await ctrd?.stop().catch((e) => console.error('containerd stop:', e));
    killLeftovers();
    await reg?.stop();
  });

  /** `ctr images ls` as {ref → digest}. */
  async function imageDigests(): Promise<Map<string, string>> {
    const out = (await ctrd!.ctr(['images', 'ls'])).stdout.trim().split('\n').slice(1);
    const map = new Map<string, string>();
    for (const line of out) {
      const cols = line.split(/\s+/);
      const digest = cols.find((c) => c.startsWith('sha256:'));
      if (cols[0] && digest) map.set(cols[0], digest);
    }
    return map;
  }

  test(
    'ctr pulls an image by tag and records the pushed manifest digest',
    logged(async () => {
      const ref = `${reg!.host}/e2e/app:1`;
      await ctrd!.pull(ref);
      assert.equal((await imageDigests()).get(ref), img.manifest.digest);
      // containerd unpacked both layers: the chain is verified against the config's diff_ids.
      const check = await ctrd!.ctr(['images', 'check']);
      assert.match(check.stdout, new RegExp(`${ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s.*complete`), check.stdout);
    }),
  );

  test(
    'ctr run of the pulled image prints the hello text',
    logged(async () => {
      const res = await ctrd!.runContainer(`${reg!.host}/e2e/app:1`, 'c1');
      assert.equal(res.stdout, hello);
      const own = await ctrd!.runContainer(`${reg!.host}/e2e/app:1`, 'c2', ['/bin/echo', 'argv works']);
      assert.equal(own.stdout, 'argv works\n');
    }),
  );

  test(
    'ctr pulls by digest',
    logged(async () => {
      const ref = `${reg!.host}/e2e/app@${img.manifest.digest}`;
      await ctrd!.pull(ref);
      assert.equal((await imageDigests()).get(ref), img.manifest.digest);
    }),
  );

  test(
    'ctr pulls a multi-arch index (linux/amd64 picked) and runs it',
    logged(async () => {
      const ref = `${reg!.host}/e2e/multi:1`;
      await ctrd!.pull(ref, { platform: 'linux/amd64' });
      assert.equal((await imageDigests()).get(ref), multi.index.digest, 'the image record points at the index');
      const res = await ctrd!.runContainer(ref, 'm1');
      assert.equal(res.stdout, multiHello);
      // The arm64 child can be fetched as well (content only, no run).
      const arm = await ctrd!.ctr(['content', 'fetch', '--plain-http', '--platform', 'linux/arm64/v8', ref], { timeoutMs: 60_000 });
      assert.equal(arm.code, 0);
      const content = (await ctrd!.ctr(['content', 'ls', '-q'])).stdout;
      for (const child of multi.images) {
        assert.ok(content.includes(child.manifest.digest), `content store has ${child.platform.architecture} manifest`);
        assert.ok(content.includes(child.config.digest), `content store has ${child.platform.architecture} config`);
      }
    }),
  );

  test(
    'ctr pulls and runs a Docker schema 2 manifest list',
    logged(async () => {
      const ref = `${reg!.host}/e2e/docker:1`;
      await ctrd!.pull(ref, { platform: 'linux/amd64' });
      assert.equal((await imageDigests()).get(ref), dockerList.index.digest);
      const res = await ctrd!.runContainer(ref, 'd1');
      assert.equal(res.stdout, dockerHello);
    }),
  );

  test(
    'ctr images import + ctr images push (POST + PUT uploads): digest preserved, pull back and run',
    logged(async () => {
      const pushHello = 'hello pushed by ctr\n';
      const local = buildBusyboxImage({ hello: pushHello });
      const archive = join(ctrd!.dir, 'import.tar');
      await writeFile(archive, ociArchive([{ tag: 'v1', target: local }]));
      await ctrd!.ctr(['images', 'import', '--base-name', 'local/app', archive]);
      const remote = `${reg!.host}/e2e/ctr-pushed:1`;
      await ctrd!.ctr(['images', 'push', '--plain-http', remote, 'local/app:v1'], { timeoutMs: 60_000 });

      const m = await fetchManifest(reg!.url, 'e2e/ctr-pushed', '1');
      assert.equal(m.digest, local.manifest.digest, 'ctr pushes the manifest bytes unchanged');
      assert.equal(m.headerDigest, local.manifest.digest);
      for (const b of [local.config, ...local.layers]) {
        assert.ok((await fetchBlob(reg!.url, 'e2e/ctr-pushed', b.digest)).equals(b.data), `blob ${b.digest}`);
      }
      // Forget the local copies, pull from the registry and run.
      await ctrd!.ctr(['images', 'rm', 'local/app:v1']);
      await ctrd!.pull(remote);
      assert.equal((await imageDigests()).get(remote), local.manifest.digest);
      const res = await ctrd!.runContainer(remote, 'p1');
      assert.equal(res.stdout, pushHello);
    }),
  );
});
