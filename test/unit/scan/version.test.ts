// Version ordering per ecosystem, with tables taken from each ecosystem's own rules and test data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareDpkg, compareApk, compareSemver, comparePep440, comparatorFor } from '../../../src/scan/version/index.js';
import { normalizePep440, isValidPep440 } from '../../../src/scan/version/pep440.js';
import { isValidSemver } from '../../../src/scan/version/semver.js';
import { isValidApkVersion } from '../../../src/scan/version/apk.js';
import { parseDpkgVersion } from '../../../src/scan/version/dpkg.js';

type Cmp = (a: string, b: string) => number;
const sym = (n: number) => (n < 0 ? '<' : n > 0 ? '>' : '=');

/** Checks "a OP b" and the mirrored "b OP' a" for every row. */
function checkTable(cmp: Cmp, rows: Array<[string, '<' | '=' | '>', string]>): void {
  for (const [a, op, b] of rows) {
    assert.equal(sym(cmp(a, b)), op, `${a} ${op} ${b}`);
    const mirrored = op === '<' ? '>' : op === '>' ? '<' : '=';
    assert.equal(sym(cmp(b, a)), mirrored, `${b} ${mirrored} ${a}`);
  }
}

/** Checks that the list is strictly increasing, pairwise. */
function checkAscending(cmp: Cmp, list: string[]): void {
  for (let i = 0; i < list.length; i++) {
    for (let j = 0; j < list.length; j++) {
      const want = i < j ? '<' : i > j ? '>' : '=';
      assert.equal(sym(cmp(list[i]!, list[j]!)), want, `${list[i]} ${want} ${list[j]}`);
    }
  }
}

test('dpkg: Debian Policy §5.6.12 — "~~ < ~~a < ~ < (nothing) < a", letters before non-letters, digits numerically', () => {
  checkAscending(compareDpkg, ['1.0~~', '1.0~~a', '1.0~', '1.0', '1.0a']);
  checkTable(compareDpkg, [
    ['1.0', '<', '1.1'],
    ['1.0~rc1', '<', '1.0'],
    ['1.0~rc1', '<', '1.0~rc2'],
    ['1.2.3', '>', '1.2'],
    ['1.10', '>', '1.9'],
    ['001', '=', '1'],
    ['1.0a', '<', '1.0+'],
    ['1.0+1', '<', '1.0.1'], // '+' (43) sorts before '.' (46); both after letters
    ['1.0-1', '<', '1.0-2'],
    ['1.0-1', '<', '1.0-1ubuntu1'],
    ['1.0-1', '<', '1.0-1+b1'],
    ['7.88.1-10+deb12u5', '<', '7.88.1-10+deb12u6'],
    ['2.36.1-8+deb11u1', '>', '2.36.1-8'],
    ['1.0-0', '=', '1.0'], // an absent revision equals "0" (dpkg)
    ['0:1.0', '=', '1.0'], // epoch 0 is the default
    ['1:0.1', '>', '9.9'], // the epoch dominates
    ['2:1.0', '>', '1:9.9-9'],
    ['1:2.3-4', '=', '1:2.3-4'],
    ['1.2-3-4', '>', '1.2-3'], // the revision is after the last hyphen; upstream "1.2-3" > "1.2"
    ['3.0.11-1~deb12u2', '<', '3.0.11-1'],
  ]);
  assert.throws(() => compareDpkg('a:1', '1'), /epoch/);
});

test("dpkg: parsing as in dpkg's lib/dpkg/t/t-version.c (zero versions, multiple hyphens and colons, invalid input)", () => {
  const parsed = (v: string) => {
    const p = parseDpkgVersion(v);
    return [p.epoch, p.upstream, p.revision];
  };
  assert.deepEqual(parsed('0'), [0, '0', '']);
  assert.deepEqual(parsed('0:0'), [0, '0', '']);
  assert.deepEqual(parsed('0:0-'), [0, '0', '']);
  assert.deepEqual(parsed('0:0.0-0.0'), [0, '0.0', '0.0']);
  assert.deepEqual(parsed('5:1'), [5, '1', '']);
  assert.deepEqual(parsed('0:0-0-0'), [0, '0-0', '0']);
  assert.deepEqual(parsed('0:0-0-0-0'), [0, '0-0-0', '0']);
  assert.deepEqual(parsed('0:0:0-0'), [0, '0:0', '0']);
  assert.deepEqual(parsed('0:0-0:0-0'), [0, '0-0:0', '0']);
  assert.deepEqual(parsed('0:09azAZ.-+~:-0'), [0, '09azAZ.-+~:', '0']);
  assert.deepEqual(parsed('0:0-azAZ09.+~'), [0, '0', 'azAZ09.+~']);
  assert.deepEqual(parsed(' \t0:0-1 \t'), [0, '0', '1']);
  assert.equal(compareDpkg('0:0-00', '0:00-0'), 0);
  assert.equal(compareDpkg('0:0-0', '1:0-0'), -1);
  assert.equal(compareDpkg('0:a-0', '0:b-0'), -1);
  assert.equal(compareDpkg('0:0-a', '0:0-b'), -1);
  for (const bad of ['', '  ', '0:', '0:0 0-1', '-1:0-1', '999999999999999999999999:0-1', 'a:0-0', 'A:0-0', '-0', '0:-0', '0:0-0:0', '0:0_-0', '0:0a-0!', '0:0-0;']) {
    assert.throws(() => parseDpkgVersion(bad), /Debian version/, JSON.stringify(bad));
  }
});

test('apk: apk-tools test/version.data rows (suffixes, letters, -rN, leading zeros, invalid → string sort)', () => {
  checkTable(compareApk, [
    ['2.34', '>', '0.1.0_alpha'],
    ['23_foo', '>', '4_beta'],
    ['1.0', '<', '1.0bc'],
    ['0.1.0_alpha', '=', '0.1.0_alpha'],
    ['0.1.0_alpha', '<', '0.1.3_alpha'],
    ['0.1.0_alpha2', '>', '0.1.0_alpha'],
    ['0.1.0_alpha', '<', '2.2.39-r1'],
    ['1.0.4-r3', '<', '1.0.4-r4'],
    ['1.1', '>', '1.1_alpha1'],
    ['1.2', '<', '1.3_alpha'],
    ['1.3_alpha2', '<', '1.3_alpha3'],
    ['0.7.0', '<', '0.8_beta1'],
    ['3.10.18-r1', '>', '2.3.0b-r1'],
    ['2.3.0b-r1', '<', '2.3.0b-r2'],
    ['0.12.3', '>', '0.12'],
    ['0.12', '<', '0.13_beta1'],
    ['1.2.11', '<', '1.2.12.1'],
    ['3.1_p16', '<', '3.1_p17'],
    ['3.1_p17', '>', '1.06-r6'],
    ['1.06-r6', '<', '006'],
    ['1.2.2-r1', '>', '1.2.2'],
    ['2.01.01_alpha10', '>', '0.94'],
    ['1.0', '>', '0.99.3.20040818'],
    ['1.00_beta2', '>', '0.9.2'],
    ['4.2.52_p2-r1', '<', '4.2.52_p4-r2'],
    ['2.5.1-r8', '<', '2.5.1a-r1'],
    ['20040401', '>', '2.0.0_rc3-r1'],
    ['0.10.0', '<', '0.10.1_rc1'],
    ['1.1a', '<', '1.3a'],
    ['0.15.1b-r2', '>', '0.15.1b'],
    ['22.7-r1', '<', '22.7.3-r1'],
    ['2.10.1', '>', '02.08.01b'],
    ['4.20', '>', '0.20070118'],
    ['0.20070118', '<', '0.20070207_rc1'],
    ['4.5_p1-r1', '>', '4.5_p1'],
    ['1.8.5', '<', '1.8.5_p2'],
    ['1.7', '<', '1.7b'],
    ['2.9.11_pre20051101-r3', '>', '2.9.11_pre20051101'],
    ['0.9.28-r2', '<', '0.9.28.1'],
    ['7.0.17', '<', '7.0.174'],
    ['1.3-r0', '<', '1.3.1-r0'],
    ['1.3_pre1-r1', '<', '1.3.2'],
    ['1.0_p10-r0', '>', '1.0_p9-r0'],
    ['0.1.0_alpha_pre2', '<', '0.1.0_alpha'],
    ['1.0.0_pre20191002222144-r0', '<', '1.0.0_pre20210530193627-r0'],
    ['1.02', '<', '1.1'], // leading zero: compared as text
    ['3.0.13-r0', '<', '3.0.14-r0'],
  ]);
  checkAscending(compareApk, ['1.0_alpha', '1.0_beta', '1.0_pre', '1.0_rc', '1.0', '1.0-r1', '1.0_cvs', '1.0_svn', '1.0_git', '1.0_hg', '1.0_p1', '1.0_p1-r1']);
  assert.equal(isValidApkVersion('1.2.3_rc1-r4'), true);
  assert.equal(isValidApkVersion('1.0bc'), false);
});

test('semver: semver.org §11 precedence examples; build metadata ignored; node-semver loose "v" prefix', () => {
  checkAscending(compareSemver, ['1.0.0', '2.0.0', '2.1.0', '2.1.1']);
  checkAscending(compareSemver, [
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
  ]);
  checkTable(compareSemver, [
    ['1.0.0+build.1', '=', '1.0.0+build.2'],
    ['1.0.0-alpha+001', '=', '1.0.0-alpha'],
    ['v1.2.3', '=', '1.2.3'],
    ['1.2.3', '<', '1.2.10'],
    ['1.0.0-2', '<', '1.0.0-10'], // numeric identifiers compare numerically
    ['1.0.0-rc.1', '>', '1.0.0-2'], // numeric < alphanumeric
    ['4.17.20', '<', '4.17.21'],
    ['99999999999999999999.0.0', '>', '9999999999999999999.0.0'], // no overflow
  ]);
  assert.equal(isValidSemver('1.0'), false);
  assert.equal(isValidSemver('1.0.0-01'), false); // §9: no leading zeros in numeric identifiers
  assert.throws(() => compareSemver('1.0', '1.0.0'), /invalid semantic version/);
});

test('PEP 440: the ordering list of the spec and pypa/packaging tests; normalisation', () => {
  checkAscending(comparePep440, [
    '1.0.dev456',
    '1.0a1',
    '1.0a2.dev456',
    '1.0a12.dev456',
    '1.0a12',
    '1.0b1.dev456',
    '1.0b2',
    '1.0b2.post345.dev456',
    '1.0b2.post345',
    '1.0b2-346',
    '1.0c1.dev456',
    '1.0c1',
    '1.0rc2',
    '1.0c3',
    '1.0',
    '1.0.post456.dev34',
    '1.0.post456',
    '1.1.dev1',
    '1.2+123abc',
    '1.2+123abc456',
    '1.2+abc',
    '1.2+abc123',
    '1.2+abc123def',
    '1.2+1234.abc',
    '1.2+123456',
    '1.2.r32+123456',
    '1.2.rev33+123456',
    '1!1.0.dev456',
    '1!1.0a1',
    '1!1.0',
    '1!1.2.rev33+123456',
  ]);
  checkTable(comparePep440, [
    ['1.0', '=', '1.0.0'],
    ['1.0a1', '=', '1.0alpha1'],
    ['1.0a1', '=', '1.0.a.1'],
    ['1.0.post0', '=', '1.0-0'],
    ['1.0.post0', '=', '1.0.POST'],
    ['v2.31.0', '=', '2.31.0'],
    ['2.31.0', '>', '2.30.99'],
    ['1.0', '<', '1.0+local'],
  ]);
  const norm: Array<[string, string]> = [
    ['1.0-ALPHA.1', '1.0a1'],
    ['v1.0', '1.0'],
    ['1.0.POST', '1.0.post0'],
    ['1.0-r4', '1.0.post4'],
    ['1.0-4', '1.0.post4'],
    ['1.0.dev', '1.0.dev0'],
    ['1.0+ubuntu-1', '1.0+ubuntu.1'],
    ['1.1RC1', '1.1rc1'],
    ['1.0c1', '1.0rc1'],
    ['1.0.preview2', '1.0rc2'],
    ['1!2.0', '1!2.0'],
    [' 1.0 ', '1.0'],
  ];
  for (const [raw, want] of norm) assert.equal(normalizePep440(raw), want, raw);
  assert.equal(isValidPep440('1.0+'), false);
  assert.equal(isValidPep440('french toast'), false);
});

test('comparatorFor picks the comparator by OSV ecosystem name', () => {
  assert.equal(comparatorFor('Debian:12'), compareDpkg);
  assert.equal(comparatorFor('Ubuntu:22.04:LTS'), compareDpkg);
  assert.equal(comparatorFor('Alpine:v3.19'), compareApk);
  assert.equal(comparatorFor('npm'), compareSemver);
  assert.equal(comparatorFor('PyPI'), comparePep440);
  assert.equal(comparatorFor('Maven'), undefined);
});
