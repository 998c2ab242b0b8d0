// The dpkg cataloger against real data: this machine's own dpkg database, read through a layer
// built from it, must list exactly what dpkg-query reports as installed, with the same source
// package names and versions (what Debian advisories are keyed on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { factsFromTar } from '../../src/scan/layers/layer-facts.js';
import { applyLayers, inventory } from '../../src/scan/catalog/inventory.js';
import { makeLayer } from '../support/image.js';
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
