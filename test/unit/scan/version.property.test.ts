// Every comparator is a total order on its ecosystem's versions: antisymmetric, transitive,
// and reflexive (x = x), for generated versions in each ecosystem's grammar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareApk, compareDpkg, comparePep440, compareSemver } from '../../../src/scan/version/index.js';

const num = fc.integer({ min: 0, max: 30 }).map(String);
const word = fc.constantFrom('a', 'b', 'rc', 'alpha', 'beta', 'x', 'dfsg', 'deb12u1', 'ubuntu1');

const dpkg = fc
  .tuple(fc.option(fc.integer({ min: 0, max: 3 })), fc.array(fc.oneof(num, word, fc.constantFrom('.', '+', '~', '~~')), { minLength: 1, maxLength: 6 }), fc.option(fc.array(fc.oneof(num, word, fc.constantFrom('.', '+', '~')), { minLength: 1, maxLength: 4 })))
  .map(([epoch, up, rev]) => `${epoch === null ? '' : `${epoch}:`}${['1', ...up].join('')}${rev === null ? '' : `-${rev.join('')}`}`);

const apk = fc
  .tuple(fc.array(num, { minLength: 1, maxLength: 4 }), fc.option(fc.constantFrom('a', 'b', 'z')), fc.array(fc.tuple(fc.constantFrom('alpha', 'beta', 'pre', 'rc', 'cvs', 'svn', 'git', 'hg', 'p'), fc.option(num)), { maxLength: 2 }), fc.option(num))
  .map(([digits, letter, suffixes, rev]) => `${digits.join('.')}${letter ?? ''}${suffixes.map(([s, n]) => `_${s}${n ?? ''}`).join('')}${rev === null ? '' : `-r${rev}`}`);

const ident = fc.oneof(num, fc.constantFrom('alpha', 'beta', 'rc', 'x-y', 'A'));
const semver = fc
  .tuple(num, num, num, fc.array(ident, { maxLength: 3 }), fc.option(fc.constantFrom('build.1', 'sha.abc')))
  .map(([a, b, c, pre, build]) => `${a}.${b}.${c}${pre.length ? `-${pre.join('.')}` : ''}${build ? `+${build}` : ''}`);

const pep440 = fc
  .tuple(fc.option(fc.integer({ min: 0, max: 2 })), fc.array(num, { minLength: 1, maxLength: 4 }), fc.option(fc.tuple(fc.constantFrom('a', 'b', 'rc', 'alpha', 'c'), num)), fc.option(num), fc.option(num), fc.option(fc.constantFrom('local', 'ubuntu.1', '5', 'a.7')))
  .map(([epoch, rel, pre, post, dev, local]) => `${epoch === null ? '' : `${epoch}!`}${rel.join('.')}${pre ? `${pre[0]}${pre[1]}` : ''}${post === null ? '' : `.post${post}`}${dev === null ? '' : `.dev${dev}`}${local ? `+${local}` : ''}`);

const cases: Array<[string, fc.Arbitrary<string>, (a: string, b: string) => number]> = [
  ['dpkg', dpkg, compareDpkg],
  ['apk', apk, compareApk],
  ['semver', semver, compareSemver],
  ['PEP 440', pep440, comparePep440],
];

for (const [name, arb, cmp] of cases) {
  test(`${name}: a total order (reflexive, antisymmetric, transitive)`, () => {
    fc.assert(
      fc.property(arb, arb, arb, (a, b, c) => {
        assert.equal(cmp(a, a), 0);
        assert.equal(Math.sign(cmp(a, b)), -Math.sign(cmp(b, a)) || 0);
        const [x, y, z] = [a, b, c].sort(cmp);
        assert.ok(cmp(x!, y!) <= 0 && cmp(y!, z!) <= 0 && cmp(x!, z!) <= 0, `${x} <= ${y} <= ${z}`);
      }),
      { numRuns: 500 },
    );
  });
}
