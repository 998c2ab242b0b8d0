// The version comparators against the ecosystems' own implementations on this machine:
// dpkg --compare-versions (Debian), pypa/packaging (PEP 440) and node-semver (npm). Versions come from this
// machine's dpkg database and from hand-picked edge cases; pairs are drawn with a fixed seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { compareDpkg } from '../../src/scan/version/dpkg.js';
import { comparePep440 } from '../../src/scan/version/pep440.js';
import { compareSemver } from '../../src/scan/version/semver.js';
import { createRequire } from 'node:module';
import { parseDpkgStatus } from '../../src/scan/catalog/os-packages.js';
import { which } from '../support/tools.js';

const run = promisify(execFile);

/** Deterministic PRNG (mulberry32), so a failure names the same pairs on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function dpkgSays(a: string, b: string): Promise<number> {
  // Exit 0: the relation holds, 1: it does not; anything else is dpkg refusing the input.
  const rel = async (op: string) =>
    run('dpkg', ['--compare-versions', a, op, b]).then(
      () => true,
      (e: { code?: number; stderr?: string }) => {
        if (e.code === 1) return false;
        throw new Error(`dpkg --compare-versions ${a} ${op} ${b}: ${e.stderr}`);
      },
    );
  if (await rel('lt')) return -1;
  return (await rel('eq')) ? 0 : 1;
}

test('dpkg: compareDpkg agrees with dpkg --compare-versions', { skip: !which('dpkg') ? 'no dpkg here' : false }, async () => {
  const installed = existsSync('/var/lib/dpkg/status') ? parseDpkgStatus(readFileSync('/var/lib/dpkg/status', 'utf8')).map((p) => p.version) : [];
  const crafted = ['1.0', '1.0~rc1', '1.0~~', '1.0+b1', '1.0-1', '1.0-1~bpo1', '1:0.9', '1.0a', '1.0.0', '1.00', '2.36-9+deb12u4', '2.36-9+deb12u10', '3.0.11-1~deb12u2', '0.0~git20230101.abcdef-1', '10.0', '9.99', '1.0-0'];
  const pool = [...new Set([...crafted, ...installed])];
  const random = rng(42);
  const pairs: Array<[string, string]> = crafted.flatMap((a) => crafted.map((b) => [a, b] as [string, string])).filter(() => random() < 0.25);
  for (let i = 0; i < 120; i++) pairs.push([pool[Math.floor(random() * pool.length)]!, pool[Math.floor(random() * pool.length)]!]);
  for (let i = 0; i < pairs.length; i += 8) {
    const batch = pairs.slice(i, i + 8);
    const truth = await Promise.all(batch.map(([a, b]) => dpkgSays(a, b)));
    batch.forEach(([a, b], j) => assert.equal(Math.sign(compareDpkg(a, b)), truth[j], `${a} vs ${b}`));
  }
});

const PYTHONS = ['/usr/bin/python3', 'python3'];
const python = PYTHONS.find((p) => spawnSync(p, ['-c', 'import packaging.version'], { stdio: 'ignore' }).status === 0);

test('PEP 440: comparePep440 agrees with pypa/packaging on every pair', { skip: python ? false : 'no python3 with packaging (Debian: python3-packaging)' }, async () => {
  const versions = [
    '1.0', '1.0.0', '1.0.post1', '1.0-1', '1.0.dev0', '1.0a1', '1.0alpha1', '1.0b2', '1.0rc1', '1.0c1', '1.0.post1.dev2',
    '1.0a1.dev1', '1.0a1.post1', '1!0.1', '0!2.0', '2.0', '1.0+local', '1.0+local.1', '1.0+local.a', '1.0+1', '1.0+abc.5',
    '1.1.dev1', '1.0.1', '1.01', '01.0', 'v1.2', '1.2.3.4.5', '2.0b1.post3.dev4', '1.0RC2', '1.0-r4', '1.0_post_3', '10.0', '9.9.9',
    '2024.1', '2024.01.01', '1.0.dev456', '1.0a12.dev456', '1.0b2.post345.dev456', '1.0b2-346', '1.2.rev33+123456', '1.2.r32+123456',
  ];
  const script = [
    'import json, sys',
    'from packaging.version import Version',
    'vs = json.loads(sys.stdin.read())',
    'p = [Version(v) for v in vs]',
    'print(json.dumps([[(a > b) - (a < b) for b in p] for a in p]))',
  ].join('\n');
  const child = spawnSync(python!, ['-c', script], { input: JSON.stringify(versions), encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.status, 0, child.stderr);
  const matrix = JSON.parse(child.stdout) as number[][];
  for (let i = 0; i < versions.length; i++) {
    for (let j = 0; j < versions.length; j++) assert.equal(Math.sign(comparePep440(versions[i]!, versions[j]!)), matrix[i]![j], `${versions[i]} vs ${versions[j]}`);
  }
});

/** node-semver is in node_modules only as a dependency of dev tools: used when present. */
const nodeSemver = (() => {
  try {
    return createRequire(import.meta.url)('semver') as { compare(a: string, b: string): number };
  } catch {
    return undefined;
  }
})();

test('semver: compareSemver agrees with node-semver on every pair', { skip: nodeSemver ? false : 'node-semver not installed' }, () => {
  const versions = [
    '1.0.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1',
    '1.0.0+build', '1.0.0-rc.1+build.5', '2.0.0', '2.1.0', '2.1.1', '10.0.0', '1.10.0', '1.2.10', '1.0.0-2', '1.0.0-10', '1.0.0-a10',
    '1.0.0-a9', '1.0.0-A', '1.0.0-a-b', '1.0.0-0', '4.17.21', '4.17.20', '0.0.0', 'v1.0.0',
  ];
  for (const a of versions) for (const b of versions) assert.equal(Math.sign(compareSemver(a, b)), nodeSemver!.compare(a, b), `${a} vs ${b}`);
});
