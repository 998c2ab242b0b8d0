// Catalogers (one per package database) and the layering rules (whiteouts, opaque directories).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyPath, type LayerFacts } from '../../../src/scan/catalog/facts.js';
import { parseApkInstalled, parseDpkgStatus, parseOsRelease } from '../../../src/scan/catalog/os-packages.js';
import { parseNpmLock, parseNpmPackageJson, parsePythonMetadata } from '../../../src/scan/catalog/lang-packages.js';
import { applyLayers, inventory } from '../../../src/scan/catalog/inventory.js';
import { factsFromTar } from '../../../src/scan/layers/layer-facts.js';
import { tar, type TarEntry } from '../../support/image.js';

async function* once(b: Buffer) {
  yield b;
}
const layer = (entries: TarEntry[]) => factsFromTar(once(tar(entries)));

test('dpkg: installed packages only, Source name and version, distroless status.d files', () => {
  const status = [
    'Package: libssl3\nStatus: install ok installed\nArchitecture: arm64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\nDescription: x\n Multi-line\n .\n continued\n',
    'Package: libfoo1\nStatus: install ok installed\nSource: foo (2.0-1)\nVersion: 2.0-1+b1\n',
    'Package: bar\nStatus: install ok installed\nSource: bar\nVersion: 1.0\n',
    'Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n',
    'Package: half\nStatus: install ok half-installed\nVersion: 1\n',
  ].join('\n');
  assert.deepEqual(parseDpkgStatus(status), [
    { type: 'deb', name: 'libssl3', version: '3.0.11-1~deb12u1', sourceName: 'openssl', arch: 'arm64' },
    { type: 'deb', name: 'libfoo1', version: '2.0-1+b1', sourceName: 'foo', sourceVersion: '2.0-1' },
    { type: 'deb', name: 'bar', version: '1.0' },
  ]);
  // distroless: one file per package, without a Status field
  assert.deepEqual(parseDpkgStatus('Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n'), [{ type: 'deb', name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' }]);
  assert.equal(classifyPath('var/lib/dpkg/status.d/tzdata'), 'dpkg-status');
  assert.equal(classifyPath('var/lib/dpkg/status.d/tzdata.md5sums'), 'dpkg-file-list');
  assert.equal(classifyPath('var/lib/dpkg/info/tzdata.list'), 'dpkg-file-list');
  assert.equal(classifyPath('var/lib/dpkg/status-old'), undefined);
});

test('apk: P/V/o/A fields; origin is the source package', () => {
  const db = 'C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nL:Apache-2.0\n\nP:musl\nV:1.2.4_git20230717-r4\no:musl\n\n';
  assert.deepEqual(parseApkInstalled(db), [
    { type: 'apk', name: 'libcrypto3', version: '3.1.4-r5', sourceName: 'openssl', arch: 'x86_64' },
    { type: 'apk', name: 'musl', version: '1.2.4_git20230717-r4' },
  ]);
});

test('os-release: quoted values, ID_LIKE', () => {
  assert.deepEqual(parseOsRelease('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'), { id: 'ubuntu', idLike: ['debian'], versionId: '22.04', prettyName: 'Ubuntu 22.04.4 LTS' });
});

test('npm: lockfile v1 (nested), v2/v3 (packages, aliases, links skipped), installed package.json roots only', () => {
  const v1 = { lockfileVersion: 1, dependencies: { express: { version: '4.17.1', dependencies: { 'qs': { version: '6.7.0' } } }, '@babel/core': { version: '7.0.0' } } };
  assert.deepEqual(parseNpmLock(JSON.stringify(v1)).map((p) => `${p.name}@${p.version}`), ['express@4.17.1', 'qs@6.7.0', '@babel/core@7.0.0']);
  const v3 = {
    lockfileVersion: 3,
    packages: {
      '': { name: 'app', version: '1.0.0' },
      'node_modules/lodash': { version: '4.17.20' },
      'node_modules/a/node_modules/lodash': { version: '3.10.1' },
      'node_modules/@scope/pkg': { version: '2.0.0' },
      'node_modules/alias': { name: 'real-name', version: '1.2.3' },
      'node_modules/ws-member': { resolved: 'packages/member', link: true },
      'packages/member': { name: 'member', version: '0.0.1' },
    },
  };
  assert.deepEqual(parseNpmLock(JSON.stringify(v3)).map((p) => `${p.name}@${p.version}`), ['lodash@4.17.20', 'lodash@3.10.1', '@scope/pkg@2.0.0', 'real-name@1.2.3']);
  assert.deepEqual(parseNpmPackageJson('{"name":"@scope/pkg","version":"2.0.0"}'), [{ type: 'npm', name: '@scope/pkg', version: '2.0.0' }]);
  assert.deepEqual(parseNpmPackageJson('{"name":"no-version"}'), []);
  assert.equal(classifyPath('app/node_modules/@scope/pkg/package.json'), 'npm-package');
  assert.equal(classifyPath('node_modules/lodash/package.json'), 'npm-package');
  assert.equal(classifyPath('app/node_modules/lodash/lib/package.json'), undefined);
  assert.equal(classifyPath('app/package.json'), undefined);
  assert.equal(classifyPath('app/package-lock.json'), 'npm-lock');
  assert.equal(classifyPath('app/node_modules/x/package-lock.json'), undefined);
});

test('Python: dist-info METADATA, egg-info PKG-INFO (directory or single file); body headers ignored', () => {
  assert.deepEqual(parsePythonMetadata('Metadata-Version: 2.1\nName: Django\nVersion: 4.2.1\n\nName: not-this\n'), [{ type: 'pypi', name: 'Django', version: '4.2.1' }]);
  assert.equal(classifyPath('usr/lib/python3.11/site-packages/Django-4.2.1.dist-info/METADATA'), 'python-metadata');
  assert.equal(classifyPath('usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO'), 'python-metadata');
  assert.equal(classifyPath('usr/lib/python3/dist-packages/six-1.16.0.egg-info', 'file'), 'python-metadata');
  assert.equal(classifyPath('usr/lib/python3/dist-packages/six-1.16.0.egg-info', 'other'), undefined);
});

test('whiteouts: ".wh.<name>" deletes a file or a whole tree from lower layers; opaque dirs hide lower contents; same-layer entries stay', async () => {
  const pkg = (name: string, version: string) => JSON.stringify({ name, version });
  const l1 = await layer([
    { type: 'file', path: 'etc/os-release', data: 'ID=debian\nVERSION_ID="12"\n' },
    { type: 'file', path: 'var/lib/dpkg/status', data: 'Package: curl\nVersion: 7.88.1-10\n' },
    { type: 'file', path: 'srv/a/node_modules/x/package.json', data: pkg('x', '1.0.0') },
    { type: 'file', path: 'srv/b/node_modules/y/package.json', data: pkg('y', '1.0.0') },
    { type: 'file', path: 'srv/c/node_modules/z/package.json', data: pkg('z', '1.0.0') },
    { type: 'file', path: 'srv/cc/node_modules/w/package.json', data: pkg('w', '1.0.0') },
  ]);
  const l2 = await layer([
    { type: 'file', path: 'var/lib/dpkg/.wh.status', data: '' }, // dpkg database removed
    { type: 'file', path: 'srv/.wh.a', data: '' }, // the whole srv/a tree
    { type: 'file', path: 'srv/b/.wh..wh..opq', data: '' }, // srv/b emptied, then refilled in this layer
    { type: 'file', path: 'srv/b/node_modules/y/package.json', data: pkg('y', '2.0.0') },
    { type: 'file', path: 'srv/.wh.c', data: '' }, // must not touch srv/cc
    { type: 'file', path: '.wh..wh.plnk', data: '' }, // aufs metadata: ignored
  ]);
  assert.deepEqual(l2.whiteouts, ['var/lib/dpkg/status', 'srv/a', 'srv/c']);
  assert.deepEqual(l2.opaqueDirs, ['srv/b']);
  const names = (layers: LayerFacts[]) => inventory(applyLayers(layers)).map((p) => `${p.name}@${p.version}`);
  assert.deepEqual(names([l1]), ['curl@7.88.1-10', 'w@1.0.0', 'x@1.0.0', 'y@1.0.0', 'z@1.0.0']);
  assert.deepEqual(names([l1, l2]), ['w@1.0.0', 'y@2.0.0']);
  // Re-adding after a whiteout in a third layer brings it back.
  const l3 = await layer([{ type: 'file', path: 'srv/a/node_modules/x/package.json', data: pkg('x', '3.0.0') }]);
  assert.deepEqual(names([l1, l2, l3]), ['w@1.0.0', 'x@3.0.0', 'y@2.0.0']);
});

test('inventory: OSV ecosystems and purls per distro; a lockfile entry also installed counts once', async () => {
  const files = applyLayers([
    await layer([
      { type: 'file', path: 'etc/os-release', data: 'ID=ubuntu\nVERSION_ID="22.04"\n' },
      { type: 'file', path: 'var/lib/dpkg/status', data: 'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.35-0ubuntu3.6\n' },
      { type: 'file', path: 'app/package-lock.json', data: JSON.stringify({ lockfileVersion: 2, packages: { 'node_modules/@types/node': { version: '20.1.0' }, 'node_modules/ms': { version: '2.1.3' } } }) },
      { type: 'file', path: 'app/node_modules/@types/node/package.json', data: JSON.stringify({ name: '@types/node', version: '20.1.0' }) },
      { type: 'file', path: 'usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA', data: 'Name: PyYAML\nVersion: 6.0\n' },
    ]),
  ]);
  assert.deepEqual(
    inventory(files).map((p) => [p.osvEcosystem, p.name, p.sourceName, p.source, p.purl]),
    [
      ['PyPI', 'PyYAML', undefined, 'usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA', 'pkg:pypi/pyyaml@6.0'],
      ['Ubuntu:22.04', 'libc6', 'glibc', 'var/lib/dpkg/status', 'pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?arch=amd64&distro=ubuntu-22.04'],
      ['npm', '@types/node', undefined, 'app/node_modules/@types/node/package.json', 'pkg:npm/%40types/node@20.1.0'],
      ['npm', 'ms', undefined, 'app/package-lock.json', 'pkg:npm/ms@2.1.3'],
    ],
  );
});

test('layer facts: unparsable or non-regular catalog files still hide lower layers, with a note', async () => {
  const l1 = await layer([{ type: 'file', path: 'app/package-lock.json', data: JSON.stringify({ lockfileVersion: 3, packages: { 'node_modules/a': { version: '1.0.0' } } }) }]);
  const l2 = await layer([{ type: 'file', path: 'app/package-lock.json', data: '{ not json' }]);
  assert.equal(l2.files['app/package-lock.json']?.kind, 'unreadable');
  assert.match(l2.notes[0]!, /app\/package-lock.json: not parsed/);
  assert.deepEqual(inventory(applyLayers([l1, l2])), []);
});

test('language packages installed by dpkg or apk count as the OS package only (file lists, status.d md5sums, apk F:/R:)', async () => {
  const site = 'usr/lib/python3/dist-packages';
  const debian = await layer([
    { type: 'file', path: 'etc/os-release', data: 'ID=debian\nVERSION_ID="12"\n' },
    { type: 'file', path: 'var/lib/dpkg/status', data: 'Package: python3-requests\nStatus: install ok installed\nSource: requests\nVersion: 2.28.1+dfsg-1\n' },
    { type: 'file', path: 'var/lib/dpkg/info/python3-requests.list', data: `/.\n/usr\n/${site}/requests-2.28.1.egg-info\n/${site}/requests-2.28.1.egg-info/PKG-INFO\n/${site}/requests/__init__.py\n` },
    { type: 'file', path: `${site}/requests-2.28.1.egg-info/PKG-INFO`, data: 'Name: requests\nVersion: 2.28.1\n' },
    { type: 'file', path: 'usr/local/lib/python3.11/site-packages/flask-3.0.0.dist-info/METADATA', data: 'Name: flask\nVersion: 3.0.0\n' },
  ]);
  assert.deepEqual(debian.files['var/lib/dpkg/info/python3-requests.list'], { kind: 'packages', packages: [], owns: [`${site}/requests-2.28.1.egg-info`, `${site}/requests-2.28.1.egg-info/PKG-INFO`] });
  assert.deepEqual(inventory(applyLayers([debian])).map((p) => `${p.ecosystem} ${p.name}`), ['Debian python3-requests', 'PyPI flask']);
  // Purging the Debian package (its list whited out) while the files stay would make the file a PyPI package again.
  const purge = await layer([{ type: 'file', path: 'var/lib/dpkg/info/.wh.python3-requests.list', data: '' }]);
  assert.deepEqual(inventory(applyLayers([debian, purge])).map((p) => `${p.ecosystem} ${p.name}`), ['Debian python3-requests', 'PyPI flask', 'PyPI requests']);

  const distroless = await layer([
    { type: 'file', path: 'var/lib/dpkg/status.d/python3-six', data: 'Package: python3-six\nVersion: 1.16.0-4\n' },
    { type: 'file', path: 'var/lib/dpkg/status.d/python3-six.md5sums', data: `0123456789abcdef0123456789abcdef  ${site}/six-1.16.0.egg-info/PKG-INFO\n` },
    { type: 'file', path: `${site}/six-1.16.0.egg-info/PKG-INFO`, data: 'Name: six\nVersion: 1.16.0\n' },
  ]);
  assert.deepEqual(inventory(applyLayers([distroless])).map((p) => `${p.ecosystem} ${p.name}`), ['Debian python3-six']);

  const alpine = await layer([
    { type: 'file', path: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.19.1\n' },
    { type: 'file', path: 'lib/apk/db/installed', data: 'P:py3-requests\nV:2.31.0-r1\no:py3-requests\nF:usr/lib/python3.11/site-packages/requests-2.31.0.dist-info\nR:METADATA\nR:RECORD\nF:usr/lib/python3.11/site-packages/requests\nR:__init__.py\n' },
    { type: 'file', path: 'usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA', data: 'Name: requests\nVersion: 2.31.0\n' },
  ]);
  assert.deepEqual(inventory(applyLayers([alpine])).map((p) => `${p.osvEcosystem} ${p.name}`), ['Alpine:v3.19 py3-requests']);
});
