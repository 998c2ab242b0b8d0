// podman ↔ Shoal: pull an image the test pushed over HTTP, tag it, push it to
// another repository, pull that into a fresh storage, run it. podman (vfs
// storage) recompresses layers on push, so the pushed manifest is new; what
// must hold is: the digest podman reports for its push is the digest the
// registry serves and the digest the next pull records, and the layer
// contents (diff_ids) and config survive.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBusyboxImage, buildMultiArchIndex, fetchBlob, fetchManifest, pushImage } from '../support/image.js';
import { startRegistry, type Registry } from '../support/target.js';
import {
  assertPrerequisites,
  killLeftovers,
  once,
  removeDir,
  run,
  skipUnless,
  tempDir,
  which,
  isolateContainersPaths,
  withServerLog,
  type RunOptions,
} from '../support/tools.js';

const TOOLS = ['podman', 'runc', 'conmon'];

type Isolation = Awaited<ReturnType<typeof isolateContainersPaths>>;

/**
 * A podman with its own storage (vfs), run dir, tmp dir and network config,
 * all under `dir`, and (through `iso`) its own blob-info cache.
 */
function podmanIn(dir: string, iso: Isolation) {
  const bin = which('podman')!;
  const global = [
    '--root', join(dir, 'root'),
    '--runroot', join(dir, 'runroot'),
    '--storage-driver', 'vfs',
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
    '--tmpdir', join(dir, 'tmp'),
    '--network-config-dir', join(dir, 'net'),
    '--volumepath', join(dir, 'volumes'),
  ];
  const env = { TMPDIR: '/var/tmp', XDG_RUNTIME_DIR: join(dir, 'xdg') };
  return (args: string[], opts: RunOptions = {}) => {
    const [cmd, argv] = iso.prefix(bin, [...global, ...args]);
    return run(cmd, argv, { timeoutMs: 90_000, ...opts, env: { ...env, ...opts.env } });
  };
}

describe('podman with shoal', { skip: skipUnless(TOOLS, { root: true }) }, () => {
  let reg: Registry | undefined;
  let work = '';
  const hello = 'hello from the podman e2e test\n';
  const img = buildBusyboxImage({ hello });
  const multi = buildMultiArchIndex({ hello: 'hello from the podman multi-arch test\n' });
  const logged = (fn: () => Promise<void>) =>
    withServerLog(
      () => reg?.output,
      async () => {
        await setup();
        await fn();
      },
    );
  let podmanA: ReturnType<typeof podmanIn>;
  let podmanB: ReturnType<typeof podmanIn>;
  let isoA: Isolation | undefined;
  let isoB: Isolation | undefined;
  let pushedDigest = '';
  let mountedDigest = '';

  const setup = once(async () => {
    assertPrerequisites(TOOLS, { root: true });
    work = await tempDir('podman');
    isoA = await isolateContainersPaths(join(work, 'a'));
    isoB = await isolateContainersPaths(join(work, 'b'));
    podmanA = podmanIn(join(work, 'a'), isoA);
    podmanB = podmanIn(join(work, 'b'), isoB);
    reg = await startRegistry();
    await pushImage(reg.url, 'e2e/app', '1', img);
    await pushImage(reg.url, 'e2e/multi', '1', multi);
  });

  after(async () => {
    killLeftovers();
    // Containers are run with --rm; a reset is not needed, but storage may hold vfs dirs: remove it all.
    await reg?.stop();
    await removeDir(work);
    await isoB?.cleanup();
    await isoA?.cleanup();
  });

  async function inspect(p: ReturnType<typeof podmanIn>, ref: string) {
    const out = (await p(['image', 'inspect', ref])).stdout;
    const [info] = JSON.parse(out) as Array<{ Id: string; Digest: string; RepoDigests: string[]; RootFS: { Layers: string[] }; Architecture: string }>;
    assert.ok(info, `podman image inspect ${ref}: ${out}`);
    return info;
  }

  test(
    'podman pull records the pushed manifest digest, config and layers',
    logged(async () => {
      const ref = `${reg!.host}/e2e/app:1`;
      await podmanA(['pull', '--tls-verify=false', ref]);
      const info = await inspect(podmanA, ref);
      assert.equal(info.Digest, img.manifest.digest, 'Digest');
      assert.equal(`sha256:${info.Id}`, img.config.digest, 'image ID is the config digest');
      assert.deepEqual(info.RootFS.Layers, img.layers.map((l) => l.diffId), 'diff_ids');
      assert.ok(info.RepoDigests.includes(`${reg!.host}/e2e/app@${img.manifest.digest}`), JSON.stringify(info.RepoDigests));
    }),
  );

  /** Checks what the registry serves for REPO:1 against the digest podman reported; returns the layer digests. */
  async function expectPushed(repo: string, digest: string): Promise<string[]> {
    const m = await fetchManifest(reg!.url, repo, '1');
    assert.equal(m.digest, digest, `sha256 of GET /v2/${repo}/manifests/1 body = podman --digestfile`);
    assert.equal(m.headerDigest, digest, 'Docker-Content-Digest = podman --digestfile');
    const manifest = m.json as { config: { digest: string }; layers: Array<{ digest: string }> };
    const config = await fetchBlob(reg!.url, repo, manifest.config.digest);
    const configJson = JSON.parse(config.toString('utf8'));
    assert.deepEqual(configJson.rootfs.diff_ids, img.layers.map((l) => l.diffId), 'diff_ids survive the push');
    assert.deepEqual(configJson.config.Cmd, ['/bin/sh', '-c', 'cat /hello.txt']);
    assert.equal(manifest.layers.length, img.layers.length);
    for (const l of manifest.layers) await fetchBlob(reg!.url, repo, l.digest);
    return manifest.layers.map((l) => l.digest);
  }

  async function podmanPush(src: string, repo: string): Promise<string> {
    const dst = `${reg!.host}/${repo}:1`;
    await podmanA(['tag', src, dst]);
    const digestFile = join(work, `${repo.replace(/\//g, '_')}.digest`);
    await podmanA(['push', '--tls-verify=false', '--digestfile', digestFile, dst]);
    const digest = (await readFile(digestFile, 'utf8')).trim();
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    return digest;
  }

  test(
    'podman tag + push to another repository (blob-info cache warm: blobs may be mounted)',
    logged(async () => {
      mountedDigest = await podmanPush(`${reg!.host}/e2e/app:1`, 'e2e/podman-mounted');
      await expectPushed('e2e/podman-mounted', mountedDigest);
    }),
  );

  test(
    'podman push with an empty blob-info cache uploads recompressed layers',
    logged(async () => {
      // Forget where the blobs live, so that podman has to upload them.
      await rm(join(work, 'a', 'host-0', 'cache'), { recursive: true, force: true });
      pushedDigest = await podmanPush(`${reg!.host}/e2e/app:1`, 'e2e/podman-pushed');
      const layers = await expectPushed('e2e/podman-pushed', pushedDigest);
      const reused = layers.filter((d) => img.layers.some((l) => l.digest === d));
      assert.deepEqual(reused, [], 'podman recompressed and uploaded every layer (none mounted or reused)');
    }),
  );

  test(
    'pull the pushed images into a fresh storage and run one',
    logged(async () => {
      assert.ok(pushedDigest && mountedDigest, 'needs the push tests');
      for (const [repo, digest] of [['e2e/podman-pushed', pushedDigest], ['e2e/podman-mounted', mountedDigest]] as const) {
        const ref = `${reg!.host}/${repo}:1`;
        await podmanB(['pull', '--tls-verify=false', ref]);
        const info = await inspect(podmanB, ref);
        // One image (same config) under two names: .Digest is the first pull's, RepoDigests has both.
        assert.ok(
          info.RepoDigests.includes(`${reg!.host}/${repo}@${digest}`),
          `${repo}: the pull records the digest of the push ${digest}: ${JSON.stringify(info.RepoDigests)}`,
        );
        assert.deepEqual(info.RootFS.Layers, img.layers.map((l) => l.diffId));
      }
      // By digest, too.
      await podmanB(['pull', '--tls-verify=false', `${reg!.host}/e2e/podman-pushed@${pushedDigest}`]);

      // podman run needs lower rlimits on this kind of host (see research/clients.md).
      const res = await podmanB([
        'run', '--rm', '--network', 'none',
        '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
        `${reg!.host}/e2e/podman-pushed:1`,
      ]);
      assert.equal(res.stdout, hello);
    }),
  );

  test(
    'podman push --compression-format zstd: zstd layers are stored and served, and pull back',
    logged(async () => {
      await rm(join(work, 'a', 'host-0', 'cache'), { recursive: true, force: true });
      const dst = `${reg!.host}/e2e/podman-zstd:1`;
      await podmanA(['tag', `${reg!.host}/e2e/app:1`, dst]);
      const digestFile = join(work, 'zstd.digest');
      await podmanA(['push', '--tls-verify=false', '--compression-format', 'zstd', '--digestfile', digestFile, dst]);
      const digest = (await readFile(digestFile, 'utf8')).trim();
      const m = await fetchManifest(reg!.url, 'e2e/podman-zstd', '1');
      assert.equal(m.digest, digest);
      assert.equal(m.headerDigest, digest);
      const layers = (m.json as { layers: Array<{ mediaType: string; digest: string }> }).layers;
      assert.deepEqual(
        layers.map((l) => l.mediaType),
        layers.map(() => 'application/vnd.oci.image.layer.v1.tar+zstd'),
      );
      for (const l of layers) {
        const data = await fetchBlob(reg!.url, 'e2e/podman-zstd', l.digest);
        assert.equal(data.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
      }
      await podmanB(['pull', '--tls-verify=false', dst]);
      const info = await inspect(podmanB, dst);
      assert.ok(info.RepoDigests.includes(`${reg!.host}/e2e/podman-zstd@${digest}`), JSON.stringify(info.RepoDigests));
      assert.deepEqual(info.RootFS.Layers, img.layers.map((l) => l.diffId));
    }),
  );

  test(
    'podman pull of a multi-arch index picks the platform asked for',
    logged(async () => {
      const ref = `${reg!.host}/e2e/multi:1`;
      await podmanB(['pull', '--tls-verify=false', '--arch', 'arm64', '--variant', 'v8', ref]);
      const info = await inspect(podmanB, ref);
      assert.equal(info.Architecture, 'arm64');
      assert.equal(`sha256:${info.Id}`, multi.images[1]!.config.digest, 'the arm64 config');
      assert.ok(
        info.RepoDigests.some((d) => d.endsWith(multi.index.digest) || d.endsWith(multi.images[1]!.manifest.digest)),
        JSON.stringify(info.RepoDigests),
      );
    }),
  );
});
