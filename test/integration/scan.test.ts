// The scanner end to end over real parts: a registry (HTTP server, filesystem blobs, SQLite) that
// images are pushed to over HTTP, OSV fixture advisories imported from disk, the scan, the SBOM
// referrer read back through the referrers API, and the per-layer cache on rescans.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServeConfig } from '../../src/server/config.js';
import { startRegistry } from '../../src/server/registry-process.js';
import { createLogger } from '../../src/server/logger.js';
import { openScanner, CYCLONEDX_MEDIA_TYPE, type ScanReport } from '../../src/scan/index.js';
import type { Digest } from '../../src/oci/digest.js';
import { makeImage, makeIndex, makeLayer, pushImage, pushBlob, pushManifest, jsonBytes, MEDIA, sha256 } from '../support/image.js';
import { OSV_FIXTURES, appLayer, buildAlpineImage, buildCleanImage, buildDebianAppImage, debianBaseLayer } from '../support/scan-images.js';

/** A registry on a loopback port (real HTTP, filesystem blobs, SQLite) and a scanner over its storage. */
async function startRegistryWithScanner(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-scan-'));
  const config = loadServeConfig({ listen: '127.0.0.1:0', data: dir, logLevel: 'silent', accessLog: 'off', maxManifestSize: '4MiB', maxBlobSize: '1GiB', manifestCacheSize: '1MiB', manifestCacheTtl: '1s', gcInterval: 'off', gcGrace: '1h', gcDeleteUntagged: false, uploadTtl: '1h' });
  const running = await startRegistry(config, createLogger('silent'));
  const base = `http://${running.address}`;
  const scan = openScanner(dir, running.service);
  t.after(async () => {
    scan.close();
    await running.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { base, scan };
}

const summary = (r: ScanReport) => r.findings.map((f) => `${f.id} ${f.severity} ${f.package.ecosystem} ${f.package.name} ${f.package.version} fixed=${f.fixedVersion ?? '-'}`);

test('scanner: exact findings across dpkg/apk/npm/PyPI, whiteouts honoured, SBOM referrer, layer cache on rescan', async (t) => {
  const { base, scan } = await startRegistryWithScanner(t);

  const imported = await scan.vulndb.importPath(OSV_FIXTURES);
  assert.deepEqual(imported.errors, []);
  assert.equal(imported.imported, 11);
  assert.equal(imported.withdrawn, 1);

  const app = buildDebianAppImage();
  await pushImage(base, 'team/app', 'v1', app);
  const report = await scan.scanner.scanImage('team/app', app.manifest.digest as Digest);

  assert.deepEqual(
    report.packages.map((p) => `${p.osvEcosystem} ${p.name} ${p.version} ${p.source}`),
    [
      'Debian:12 libssl3 3.0.11-1~deb12u1 var/lib/dpkg/status',
      'Debian:12 zlib1g 1:1.2.13.dfsg-1 var/lib/dpkg/status',
      'PyPI requests 2.30.0 usr/lib/python3/dist-packages/requests-2.30.0.dist-info/METADATA',
      'PyPI urllib3 2.0.7 usr/lib/python3/dist-packages/urllib3-2.0.7.dist-info/METADATA',
      'npm lodash 4.17.20 app/node_modules/lodash/package.json',
      'npm minimist 1.2.8 app/package-lock.json',
    ],
  );
  // curl (removed by a later dpkg status), PyYAML (whiteout), left-pad (opaque dir), zlib and
  // minimist and urllib3 (fixed / past last_affected) and the withdrawn advisory are absent.
  assert.deepEqual(summary(report), [
    'DEBIAN-CVE-2099-1001 CRITICAL Debian libssl3 3.0.11-1~deb12u1 fixed=3.0.11-1~deb12u2',
    'GHSA-29mw-wpgm-hmr9 HIGH npm lodash 4.17.20 fixed=4.17.21',
    'PYSEC-2099-3001 MEDIUM PyPI requests 2.30.0 fixed=2.31.0',
  ]);
  assert.deepEqual(report.findings[0]!.aliases, ['CVE-2099-1001']);
  assert.equal(report.stats!.layers, 3);
  assert.equal(report.stats!.layersRead, 3);
  assert.ok(report.stats!.bytesRead > 0 && report.stats!.tarBytes > report.stats!.bytesRead);

  // The SBOM is a referrer of the image, with the CycloneDX artifact type, listing the packages.
  assert.ok(report.sbomDigest);
  const referrers = (await (await fetch(`${base}/v2/team/app/referrers/${app.manifest.digest}`)).json()) as { manifests: Array<{ digest: string; artifactType: string }> };
  assert.deepEqual(referrers.manifests.map((m) => [m.digest, m.artifactType]), [[report.sbomDigest, CYCLONEDX_MEDIA_TYPE]]);
  const sbomManifest = (await (await fetch(`${base}/v2/team/app/manifests/${report.sbomDigest}`, { headers: { accept: MEDIA.ociManifest } })).json()) as { subject: { digest: string }; layers: Array<{ digest: string; mediaType: string }> };
  assert.equal(sbomManifest.subject.digest, app.manifest.digest);
  const bom = (await (await fetch(`${base}/v2/team/app/blobs/${sbomManifest.layers[0]!.digest}`)).json()) as { bomFormat: string; specVersion: string; components: Array<{ purl: string }> };
  assert.equal(bom.bomFormat, 'CycloneDX');
  assert.equal(bom.specVersion, '1.5');
  assert.ok(bom.components.some((c) => c.purl === 'pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12'));
  assert.ok(bom.components.some((c) => c.purl === 'pkg:npm/lodash@4.17.20'));

  // Rescan: every layer comes from the cache; same findings; the same SBOM digest (deterministic).
  const again = await scan.scanner.scanImage('team/app', app.manifest.digest as Digest);
  assert.equal(again.stats!.layersRead, 0);
  assert.equal(again.stats!.layersCached, 3);
  assert.deepEqual(summary(again), summary(report));
  assert.equal(again.sbomDigest, report.sbomDigest);

  // The SBOM artifact itself is not an image: scanning it finds nothing and attaches nothing.
  const ofSbom = await scan.scanner.scanImage('team/app', report.sbomDigest! as Digest);
  assert.deepEqual([ofSbom.packages, ofSbom.sbomDigest, ofSbom.notes], [[], undefined, ['not a container image (config application/vnd.oci.empty.v1+json): nothing to scan']]);

  // Another image sharing the base and app layers, without the cleanup layer: only its new layer
  // would be read, but here it has none — the cached facts are re-layered, so curl, PyYAML and
  // left-pad come back, proving the cache holds per-layer facts rather than final packages.
  const uncleaned = makeImage([debianBaseLayer(), appLayer()], { cmd: ['uncleaned'] });
  await pushImage(base, 'team/app', 'uncleaned', uncleaned);
  const r2 = await scan.scanner.scanImage('team/app', uncleaned.manifest.digest as Digest);
  assert.equal(r2.stats!.layersRead, 0);
  assert.deepEqual(
    r2.findings.map((f) => `${f.id} ${f.package.name}`),
    ['DEBIAN-CVE-2099-1001 libssl3', 'DEBIAN-CVE-2099-1003 curl', 'PYSEC-2099-3002 PyYAML', 'GHSA-29mw-wpgm-hmr9 lodash', 'PYSEC-2099-3001 requests', 'GHSA-test-left-pad left-pad'],
  );

  // Alpine (apk, origin-keyed advisories; a finding without severity is UNKNOWN).
  const alpine = buildAlpineImage();
  await pushImage(base, 'team/alpine', '3.19', alpine);
  const ra = await scan.scanner.scanImage('team/alpine', alpine.manifest.digest as Digest);
  assert.deepEqual(ra.packages.map((p) => `${p.osvEcosystem} ${p.name} ${p.version} ${p.sourceName ?? ''}`), ['Alpine:v3.19 busybox 1.36.1-r15 ', 'Alpine:v3.19 libcrypto3 3.1.4-r5 openssl']);
  assert.deepEqual(summary(ra), ['ALPINE-CVE-2099-4001 UNKNOWN Alpine busybox 1.36.1-r15 fixed=1.36.1-r16']);

  // A clean image: packages found, no findings.
  const clean = buildCleanImage();
  await pushImage(base, 'team/clean', 'v1', clean);
  const rc = await scan.scanner.scanImage('team/clean', clean.manifest.digest as Digest);
  assert.equal(rc.packages.length, 1);
  assert.deepEqual(rc.findings, []);
});

test('scanner: an index is scanned per platform (shared layers read once); a zstd layer is a note, not a crash; plain tar layers', async (t) => {
  const { base, scan } = await startRegistryWithScanner(t);
  await scan.vulndb.importPath(OSV_FIXTURES);

  const layers = [debianBaseLayer(), appLayer()];
  const amd64 = makeImage(layers, { platform: { architecture: 'amd64', os: 'linux' } });
  const arm64 = makeImage(layers, { platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
  const index = makeIndex([amd64, arm64]);
  await pushImage(base, 'team/multi', 'v1', index);
  const r = await scan.scanner.scanImage('team/multi', index.index.digest as Digest);
  assert.equal(r.platforms?.length, 2);
  assert.deepEqual(r.platforms!.map((p) => `${p.platform?.architecture} ${p.findings.length} ${p.stats!.layersRead} ${p.stats!.layersCached}`), ['amd64 6 2 0', 'arm64 6 0 2']);
  assert.equal(r.findings.length, 6); // the union, not doubled
  assert.ok(r.platforms!.every((p) => p.sbomDigest));
  // The index has its own SBOM referrer (the union), next to each platform's.
  const indexReferrers = (await (await fetch(`${base}/v2/team/multi/referrers/${index.index.digest}`)).json()) as { manifests: Array<{ digest: string }> };
  assert.deepEqual(indexReferrers.manifests.map((m) => m.digest), [r.sbomDigest]);

  // A zstd layer (magic bytes) next to a readable gzip layer.
  const zstdBlob = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(60, 7)]);
  const zstdDigest = sha256(zstdBlob);
  const good = makeLayer([{ type: 'file', path: 'lib/apk/db/installed', data: 'P:busybox\nV:1.36.1-r15\n' }], { compress: false });
  const config2 = jsonBytes({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('x'), good.diffId] } });
  await pushBlob(base, 'team/zstd', { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: zstdDigest, size: zstdBlob.length, data: zstdBlob });
  await pushBlob(base, 'team/zstd', good);
  await pushBlob(base, 'team/zstd', { mediaType: MEDIA.ociConfig, digest: sha256(config2), size: config2.length, data: config2 });
  const manifest = jsonBytes({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(config2), size: config2.length },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: zstdDigest, size: zstdBlob.length },
      { mediaType: good.mediaType, digest: good.digest, size: good.size },
    ],
  });
  await pushManifest(base, 'team/zstd', 'v1', { mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: manifest.length, data: manifest });
  const rz = await scan.scanner.scanImage('team/zstd', sha256(manifest) as Digest);
  assert.ok(rz.notes!.some((n) => n.includes(zstdDigest) && n.includes('unsupported compression')), JSON.stringify(rz.notes));
  assert.deepEqual(rz.packages.map((p) => p.name), ['busybox']); // from the uncompressed tar layer
  assert.equal(rz.stats!.tarBytes, good.size);
});
