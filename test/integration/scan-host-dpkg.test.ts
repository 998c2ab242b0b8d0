// The dpkg cataloger against real data: this machine's own dpkg database, read through a layer
// built from it, must list exactly what dpkg-query reports as installed, with the same source
// package names and versions (what Debian advisories are keyed on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { factsFromTar } from '../../src/scan/layers/layer-facts.js';
import { applyLayers, inventory } from '../../src/scan/catalog/inventory.js';
import { makeLayer, type TarEntry } from '../support/image.js';
import { which } from '../support/tools.js';

const run = promisify(execFile);

test('dpkg cataloger = dpkg-query on this machine (names, versions, source packages)', { skip: !which('dpkg-query') || !existsSync('/var/lib/dpkg/status') ? 'no dpkg here' : false }, async () => {
  const layer = makeLayer([
    { type: 'file', path: 'etc/os-release', data: readFileSync('/etc/os-release') },
    { type: 'file', path: 'var/lib/dpkg/status', data: readFileSync('/var/lib/dpkg/status') },
  ]);
  async function* once() {
    yield layer.tar;
  }
  const packages = inventory(applyLayers([await factsFromTar(once())]));
  const { stdout } = await run('dpkg-query', ['-W', '-f', '${db:Status-Status} ${Package} ${Version} ${source:Package} ${source:Version}\\n'], { maxBuffer: 64 << 20 });
  const expected = stdout
    .split('\n')
    .filter((l) => l.startsWith('installed '))
    .map((l) => l.split(' ').slice(1).join(' '))
    .sort();
  assert.ok(expected.length > 10, `dpkg-query listed ${expected.length} installed packages`);
  const actual = packages.map((p) => `${p.name} ${p.version} ${p.sourceName ?? p.name} ${p.sourceVersion ?? p.version}`).sort();
  assert.deepEqual(actual, expected);
  const os = readFileSync('/etc/os-release', 'utf8');
  if (/^ID=debian$/m.test(os)) assert.ok(packages.every((p) => p.osvEcosystem === `Debian:${/^VERSION_ID="?(\d+)/m.exec(os)![1]}`));
});

test('Python packages that dpkg installed (per its info/*.list files) are not reported as PyPI packages', { skip: !existsSync('/var/lib/dpkg/info') || !existsSync('/usr/lib/python3/dist-packages') ? 'no dpkg-managed Python here' : false }, async () => {
  const site = '/usr/lib/python3/dist-packages';
  const metadata: TarEntry[] = [];
  for (const name of readdirSync(site)) {
    const p = join(site, name);
    if (name.endsWith('.dist-info') && existsSync(join(p, 'METADATA'))) metadata.push({ type: 'file', path: join(p, 'METADATA'), data: readFileSync(join(p, 'METADATA')) });
    else if (name.endsWith('.egg-info')) {
      const file = statSync(p).isDirectory() ? join(p, 'PKG-INFO') : p;
      if (existsSync(file)) metadata.push({ type: 'file', path: file, data: readFileSync(file) });
    }
  }
  if (metadata.length === 0) return;
  const lists: TarEntry[] = readdirSync('/var/lib/dpkg/info')
    .filter((n) => n.endsWith('.list'))
    .map((n) => ({ type: 'file', path: `/var/lib/dpkg/info/${n}`, data: readFileSync(`/var/lib/dpkg/info/${n}`) }));
  const scanOf = async (entries: TarEntry[]) => {
    const tarball = makeLayer(entries).tar;
    async function* once() {
      yield tarball;
    }
    return inventory(applyLayers([await factsFromTar(once())])).filter((p) => p.ecosystem === 'PyPI' && p.source.startsWith(site.slice(1)));
  };
  // Without dpkg's file lists, the metadata files are PyPI packages...
  assert.ok((await scanOf(metadata)).length > 0);
  // ...with them, the ones dpkg owns (dpkg -S) are not.
  const owned = new Set<string>();
  for (const e of metadata) {
    const r = await run('dpkg', ['-S', e.path]).then(() => true, () => false);
    if (r) owned.add(e.path.slice(1));
  }
  const reported = (await scanOf([...lists, ...metadata])).map((p) => p.source).sort();
  assert.deepEqual(reported, metadata.map((e) => e.path.slice(1)).filter((p) => !owned.has(p)).sort());
});
