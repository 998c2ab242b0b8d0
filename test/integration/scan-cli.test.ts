// `shoal vulndb import` and `shoal scan` as processes on the data directory of a running
// `shoal serve` that the images were pushed to over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startShoal, shoalBin } from '../support/server.js';
import { pushImage } from '../support/image.js';
import { OSV_FIXTURES, buildCleanImage, buildDebianAppImage } from '../support/scan-images.js';

const run = promisify(execFile);

async function shoal(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [shoalBin, ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('shoal vulndb import + shoal scan: table, --json, --fail-on exit 3, clean image exit 0', async (t) => {
  const registry = await startShoal();
  t.after(() => registry.stop());
  await pushImage(registry.url, 'team/app', 'v1', buildDebianAppImage());
  await pushImage(registry.url, 'team/clean', 'v1', buildCleanImage());
  const data = ['--data', registry.dataDir];

  const imp = await shoal(['vulndb', 'import', OSV_FIXTURES, ...data, '--json']);
  assert.equal(imp.code, 0, imp.stderr);
  assert.deepEqual({ ...JSON.parse(imp.stdout), errors: undefined }, { files: 8, imported: 11, withdrawn: 1, skipped: 0, total: 11, errors: undefined });

  const table = await shoal(['scan', 'team/app:v1', ...data]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /packages: 6 {3}findings: 3 \(1 CRITICAL, 1 HIGH, 1 MEDIUM\)/);
  assert.match(table.stdout, /CRITICAL\s+DEBIAN-CVE-2099-1001\s+libssl3\s+3\.0\.11-1~deb12u1\s+3\.0\.11-1~deb12u2\s+Debian:12/);
  assert.match(table.stdout, /sbom: sha256:[0-9a-f]{64}/);

  const json = await shoal(['scan', 'team/app:v1', ...data, '--json']);
  const report = JSON.parse(json.stdout);
  assert.deepEqual(report.findings.map((f: { id: string }) => f.id), ['DEBIAN-CVE-2099-1001', 'GHSA-29mw-wpgm-hmr9', 'PYSEC-2099-3001']);
  assert.equal(report.stats.layersRead, 0); // the table run above cached every layer
  // The SBOM pushed by the CLI is visible through the running server's referrers API.
  const referrers = await (await fetch(`${registry.url}/v2/team/app/referrers/${report.manifestDigest}`)).json();
  assert.deepEqual(referrers.manifests.map((m: { digest: string }) => m.digest), [report.sbomDigest]);

  const failHigh = await shoal(['scan', `team/app@${report.manifestDigest}`, ...data, '--fail-on', 'HIGH', '--no-sbom']);
  assert.equal(failHigh.code, 3);
  assert.match(failHigh.stderr, /2 finding\(s\) at or above HIGH/);
  const clean = await shoal(['scan', 'team/clean:v1', ...data, '--fail-on', 'LOW']);
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  assert.match(clean.stdout, /packages: 1 {3}findings: 0/);
  const missing = await shoal(['scan', 'team/nothing:v1', ...data]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /not in repository team\/nothing/);
});
