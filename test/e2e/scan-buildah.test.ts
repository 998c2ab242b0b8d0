// Real whiteouts from a real builder: buildah builds FROM a fixture image in Shoal with a RUN that
// deletes packages (buildah writes the .wh. entries), pushes the result to a running `shoal serve`,
// and `shoal scan` on its data directory must not report what the RUN deleted.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startShoal, shoalBin, type RunningShoal } from '../support/server.js';
import { busyboxLayer, fetchBlob, fetchManifest, makeImage, pushImage, untar } from '../support/image.js';
import { OSV_FIXTURES, appLayer, debianBaseLayer } from '../support/scan-images.js';
import { assertPrerequisites, isolateContainersPaths, killLeftovers, removeDir, run, skipUnless, tempDir, which, withServerLog } from '../support/tools.js';

const TOOLS = ['buildah', 'runc'];

describe('scan an image built by buildah (real whiteouts)', { skip: skipUnless(TOOLS, { root: true }) }, () => {
  let reg: RunningShoal | undefined;
  let work = '';
  let iso: Awaited<ReturnType<typeof isolateContainersPaths>> | undefined;

  after(async () => {
    killLeftovers();
    await reg?.stop();
    await removeDir(work);
    await iso?.cleanup();
  });

  function buildah(args: string[]) {
    const global = ['--root', join(work, 'root'), '--runroot', join(work, 'runroot'), '--storage-driver', 'vfs'];
    const [cmd, argv] = iso!.prefix(which('buildah')!, [...global, ...args]);
    return run(cmd, argv, { timeoutMs: 100_000, env: { TMPDIR: '/var/tmp', XDG_RUNTIME_DIR: join(work, 'xdg') } });
  }

  test(
    'RUN rm -rf of packages yields whiteouts the scanner honours',
    withServerLog(
      () => reg?.output,
      async () => {
        assertPrerequisites(TOOLS, { root: true });
        work = await tempDir('scan-buildah');
        iso = await isolateContainersPaths(work);
        reg = await startShoal();
        // busybox (for RUN) + Debian 12 dpkg status (libssl3, zlib1g, curl) + the app layer (npm, Python).
        await pushImage(reg.url, 'e2e/scanbase', '1', makeImage([busyboxLayer(), debianBaseLayer(), appLayer()]));
        const ctx = join(work, 'context');
        await mkdir(ctx, { recursive: true });
        const site = '/usr/lib/python3/dist-packages';
        await writeFile(
          join(ctx, 'Dockerfile'),
          [
            `FROM ${reg.host}/e2e/scanbase:1`,
            `RUN rm -rf ${site}/PyYAML-5.3.1.dist-info /opt/tool /app/node_modules/lodash && rm -rf /app && mkdir /app && echo '{}' > /app/empty.json`,
            '',
          ].join('\n'),
        );
        const ref = `${reg.host}/e2e/scanned:1`;
        await buildah(['bud', '--tls-verify=false', '--network', 'none', '--format', 'oci', '-f', join(ctx, 'Dockerfile'), '-t', ref, ctx]);
        const digestFile = join(work, 'digest');
        await buildah(['push', '--tls-verify=false', '--digestfile', digestFile, ref]);
        const digest = (await readFile(digestFile, 'utf8')).trim();

        // The new layer really carries whiteouts (written by buildah, not by us).
        const m = await fetchManifest(reg.url, 'e2e/scanned', '1');
        const top = m.json.layers.at(-1) as { digest: string; mediaType: string };
        const blob = await fetchBlob(reg.url, 'e2e/scanned', top.digest);
        const names = untar(top.mediaType.endsWith('+gzip') ? gunzipSync(blob) : blob).map((e) => e.path.replace(/^\.?\//, ''));
        assert.ok(names.some((n) => n.endsWith('.wh.PyYAML-5.3.1.dist-info')), `whiteouts in the RUN layer: ${names.join(', ')}`);

        const data = ['--data', reg.dataDir];
        const imp = await run(process.execPath, [shoalBin, 'vulndb', 'import', OSV_FIXTURES, ...data], { timeoutMs: 60_000 });
        assert.match(imp.stdout, /imported 11 advisories/);
        const scan = await run(process.execPath, [shoalBin, 'scan', `e2e/scanned@${digest}`, ...data, '--json'], { timeoutMs: 60_000 });
        const report = JSON.parse(scan.stdout) as { packages: Array<{ name: string }>; findings: Array<{ id: string; package: { name: string } }>; sbomDigest: string };
        // PyYAML (whited out), left-pad (/opt/tool removed), lodash and minimist (/app replaced) are gone;
        // curl is still installed (only the RUN layer changed), so its advisory is reported.
        assert.deepEqual(report.packages.map((p) => p.name).sort(), ['curl', 'libssl3', 'requests', 'urllib3', 'zlib1g']);
        assert.deepEqual(report.findings.map((f) => `${f.id} ${f.package.name}`), ['DEBIAN-CVE-2099-1001 libssl3', 'DEBIAN-CVE-2099-1003 curl', 'PYSEC-2099-3001 requests']);
        const referrers = await (await fetch(`${reg.url}/v2/e2e/scanned/referrers/${digest}`)).json();
        assert.deepEqual(referrers.manifests.map((x: { digest: string }) => x.digest), [report.sbomDigest]);
      },
    ),
  );
});
