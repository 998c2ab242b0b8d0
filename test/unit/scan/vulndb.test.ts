// OSV matching (ranges, version lists, ecosystems), severity (named, CVSS v3 base score), the
// SQLite advisory store, and the SBOM document's shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cvss3BaseScore, severityOfScore } from '../../../src/scan/vulndb/cvss.js';
import { ecosystemMatches, isAffected, severityOf, type OsvAffected } from '../../../src/scan/vulndb/osv.js';
import { VulnDb } from '../../../src/scan/vulndb/vulndb.js';
import { openScanDatabaseFile } from '../../../src/scan/scan-db.js';
import { cycloneDx } from '../../../src/scan/sbom.js';
import type { Package } from '../../../src/scan/scanner.js';

test('CVSS v3.x base scores (FIRST specification examples) and ratings', () => {
  const table: Array<[string, number]> = [
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1], // phpMyAdmin reflected XSS (CVE-2013-1937)
    ['CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N', 7.5], // Heartbleed (CVE-2014-0160)
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8], // Dirty COW (CVE-2016-5195)
    ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N', 5.9],
    ['CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 6.8], // Sophos (CVE-2014-2005)
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H', 8.8], // Chrome (CVE-2016-1645)
    ['CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4], // PR:L weighs 0.68 when the scope changes
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
  ];
  for (const [v, want] of table) assert.equal(cvss3BaseScore(v), want, v);
  assert.equal(cvss3BaseScore('CVSS:2.0/AV:N'), null);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:X/C:H/I:H/A:H'), null);
  assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L'), null);
  assert.deepEqual([9.0, 8.9, 7.0, 6.9, 4.0, 3.9, 0.1].map(severityOfScore), ['CRITICAL', 'HIGH', 'HIGH', 'MEDIUM', 'MEDIUM', 'LOW', 'LOW']);
});

test('severity: affected ecosystem_specific, then database_specific, then CVSS vectors, else UNKNOWN', () => {
  const cvss = [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N' }];
  assert.equal(severityOf({ id: 'a', database_specific: { severity: 'MODERATE' }, severity: cvss }, { ecosystem_specific: { severity: 'critical' } }), 'CRITICAL');
  assert.equal(severityOf({ id: 'a', database_specific: { severity: 'MODERATE' }, severity: cvss }, {}), 'MEDIUM');
  assert.equal(severityOf({ id: 'a', severity: cvss }, {}), 'HIGH');
  assert.equal(severityOf({ id: 'a' }, { severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H' }] }), 'CRITICAL');
  assert.equal(severityOf({ id: 'a', severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N' }] }, {}), 'UNKNOWN');
  assert.equal(severityOf({ id: 'a', database_specific: { severity: 'negligible' } }, undefined), 'LOW');
  assert.equal(severityOf({ id: 'UBUNTU-CVE-1', severity: [{ type: 'Ubuntu', score: 'high' }] }, {}), 'HIGH');
});

const range = (type: string, ...events: Array<Record<string, string>>): OsvAffected => ({ ranges: [{ type, events }] });

test('OSV ranges: introduced/fixed, several intervals, last_affected, limit, versions lists, unparsable versions', () => {
  const twoIntervals = { ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '1.0' }, { fixed: '1.5' }, { introduced: '2.0' }, { fixed: '2.5' }] }] };
  const rows: Array<[string, string, OsvAffected, boolean, string | undefined]> = [
    ['Debian:12', '3.0.11-1~deb12u1', range('ECOSYSTEM', { introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }), true, '3.0.11-1~deb12u2'],
    ['Debian:12', '3.0.11-1~deb12u2', range('ECOSYSTEM', { introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }), false, undefined],
    ['Debian:12', '3.0.11-1', range('ECOSYSTEM', { introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }), false, undefined], // ~ sorts before
    ['Alpine:v3.19', '1.36.1-r15', range('ECOSYSTEM', { introduced: '0' }, { fixed: '1.36.1-r16' }), true, '1.36.1-r16'],
    ['Alpine:v3.19', '1.36.1_p1', range('ECOSYSTEM', { introduced: '0' }, { fixed: '1.36.1-r16' }), false, undefined],
    ['PyPI', '1.7', twoIntervals, false, '2.5'], // between intervals; the next fix is 2.5 (lowest fix above)
    ['PyPI', '1.2', twoIntervals, true, '1.5'],
    ['PyPI', '2.4.9', twoIntervals, true, '2.5'],
    ['PyPI', '2.5.0', twoIntervals, false, undefined],
    ['PyPI', '0.9', twoIntervals, false, '1.5'],
    ['PyPI', '2.0.5', range('ECOSYSTEM', { introduced: '2.0.0' }, { last_affected: '2.0.5' }), true, undefined],
    ['PyPI', '2.0.6', range('ECOSYSTEM', { introduced: '2.0.0' }, { last_affected: '2.0.5' }), false, undefined],
    ['PyPI', '2.0.5.post1', range('ECOSYSTEM', { introduced: '2.0.0' }, { last_affected: '2.0.5' }), false, undefined],
    ['PyPI', '2.0.0rc1', range('ECOSYSTEM', { introduced: '2.0.0' }, { fixed: '2.1' }), false, '2.1'],
    ['npm', '4.17.20', range('SEMVER', { introduced: '0' }, { fixed: '4.17.21' }), true, '4.17.21'],
    ['npm', '4.17.21-beta.1', range('SEMVER', { introduced: '0' }, { fixed: '4.17.21' }), true, '4.17.21'],
    ['npm', '4.17.21+build', range('SEMVER', { introduced: '0' }, { fixed: '4.17.21' }), false, undefined],
    ['npm', '5.0.0', range('SEMVER', { introduced: '0' }, { limit: '5.0.0' }), false, undefined],
    ['npm', '4.9.9', range('SEMVER', { introduced: '0' }, { limit: '5.0.0' }), true, undefined],
    ['npm', '1.1.0', { versions: ['1.0.0', '1.1.0'] }, true, undefined],
    ['npm', '1.2.0', { versions: ['1.0.0', '1.1.0'] }, false, undefined],
    ['PyPI', '1.0.0', { versions: ['1.0'] }, true, undefined], // PEP 440: same version, other spelling
    ['npm', 'github:user/repo', range('SEMVER', { introduced: '0' }), false, undefined], // not a version: skipped, not guessed
    ['npm', '1.0.0', range('GIT', { introduced: 'abc123' }), false, undefined],
  ];
  for (const [eco, version, affected, hit, fixed] of rows) {
    const r = isAffected(eco, version, affected);
    assert.equal(r.affected, hit, `${eco} ${version} ${JSON.stringify(affected)}`);
    assert.equal(r.fixed, fixed, `fixed for ${eco} ${version}`);
  }
});

test('OSV ecosystems: exact release, advisories for every release, Ubuntu channel suffixes', () => {
  assert.equal(ecosystemMatches('Debian:12', 'Debian:12'), true);
  assert.equal(ecosystemMatches('Debian:11', 'Debian:12'), false);
  assert.equal(ecosystemMatches('Debian', 'Debian:12'), true);
  assert.equal(ecosystemMatches('Ubuntu:22.04:LTS', 'Ubuntu:22.04'), true);
  assert.equal(ecosystemMatches('Ubuntu:Pro:20.04:LTS', 'Ubuntu:22.04'), false);
  assert.equal(ecosystemMatches('Alpine:v3.19', 'Alpine:v3.18'), false);
  assert.equal(ecosystemMatches('npm', 'PyPI'), false);
});

test('vulndb: import replaces by id, drops withdrawn, matches by source name and normalised PyPI name', () => {
  const db = openScanDatabaseFile(':memory:');
  const v = new VulnDb(db);
  const adv = (id: string, fixed: string, extra: object = {}) => ({ id, affected: [{ package: { ecosystem: 'Debian:12', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed }] }] }], ...extra });
  assert.deepEqual(v.importAdvisories([adv('DSA-1', '3.0.11-1~deb12u2'), { id: 'bad' } as never]), { imported: 1, withdrawn: 0, skipped: 1 });
  v.importAdvisories([
    { id: 'PYSEC-1', affected: [{ package: { ecosystem: 'PyPI', name: 'Foo_Bar' }, versions: ['1.0'] }] },
  ]);
  const libssl: Package = { ecosystem: 'Debian', osvEcosystem: 'Debian:12', name: 'libssl3', sourceName: 'openssl', version: '3.0.11-1~deb12u1', source: 'var/lib/dpkg/status' };
  assert.deepEqual(v.match(libssl).map((f) => [f.id, f.fixedVersion, f.severity]), [['DSA-1', '3.0.11-1~deb12u2', 'UNKNOWN']]);
  // Re-import with an earlier fix: replaced, no longer affecting.
  v.importAdvisories([adv('DSA-1', '3.0.11-1~deb12u1')]);
  assert.deepEqual(v.match(libssl), []);
  v.importAdvisories([adv('DSA-1', '9', { withdrawn: '2024-01-01T00:00:00Z' })]);
  assert.equal(v.count(), 1);
  assert.deepEqual(v.match({ ecosystem: 'PyPI', osvEcosystem: 'PyPI', name: 'foo.bar', version: '1.0.0', source: 'x' }).map((f) => f.id), ['PYSEC-1']);
  db.close();
});

test('SBOM: CycloneDX 1.5 shape, purls, deterministic serial number', () => {
  const pkgs: Package[] = [{ ecosystem: 'npm', osvEcosystem: 'npm', name: 'lodash', version: '4.17.20', source: 'app/package-lock.json', purl: 'pkg:npm/lodash@4.17.20' }];
  const subject = { repository: 'team/app', digest: `sha256:${'a'.repeat(64)}` as const, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10 };
  const bom = cycloneDx(subject, pkgs) as { bomFormat: string; specVersion: string; serialNumber: string; metadata: { component: { type: string; name: string } }; components: Array<Record<string, unknown>> };
  assert.equal(bom.bomFormat, 'CycloneDX');
  assert.equal(bom.specVersion, '1.5');
  assert.match(bom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(bom.metadata.component, { type: 'container', 'bom-ref': subject.digest, name: 'team/app', version: subject.digest });
  assert.equal(bom.components[0]!['purl'], 'pkg:npm/lodash@4.17.20');
  assert.equal(bom.components[0]!['type'], 'library');
  assert.equal((cycloneDx(subject, pkgs) as { serialNumber: string }).serialNumber, bom.serialNumber);
  assert.notEqual((cycloneDx(subject, []) as { serialNumber: string }).serialNumber, bom.serialNumber);
});
