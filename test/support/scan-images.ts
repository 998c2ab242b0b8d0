// Small images with known package databases for scanner tests (and the delivery chain's tests):
// a Debian application image whose upper layers remove, white out and hide packages, an Alpine
// image, and a clean image. The advisories that match them live in test/fixtures/osv/.
import { makeImage, makeLayer, type BuiltImage, type Layer, type TarEntry } from './image.js';

export const OSV_FIXTURES = new URL('../fixtures/osv/', import.meta.url).pathname;

const DEBIAN_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n';

function dpkgStanza(fields: Record<string, string>): string {
  return Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n') + '\nDescription: fixture package\n continuation line of the description\n';
}

const LIBSSL3 = dpkgStanza({ Package: 'libssl3', Status: 'install ok installed', Architecture: 'amd64', Source: 'openssl', Version: '3.0.11-1~deb12u1' });
const ZLIB = dpkgStanza({ Package: 'zlib1g', Status: 'install ok installed', Architecture: 'amd64', Source: 'zlib', Version: '1:1.2.13.dfsg-1' });
const CURL = dpkgStanza({ Package: 'curl', Status: 'install ok installed', Architecture: 'amd64', Version: '7.88.1-10+deb12u4' });
const REMOVED = dpkgStanza({ Package: 'oldpkg', Status: 'deinstall ok config-files', Architecture: 'amd64', Version: '1.0-1' });

/** Debian 12 base: os-release (etc/os-release a symlink, as on Debian), dpkg status with curl. */
export function debianBaseLayer(): Layer {
  return makeLayer([
    { type: 'dir', path: 'etc' },
    { type: 'symlink', path: 'etc/os-release', target: '../usr/lib/os-release' },
    { type: 'file', path: 'usr/lib/os-release', data: DEBIAN_OS_RELEASE },
    { type: 'file', path: 'var/lib/dpkg/status', data: [LIBSSL3, ZLIB, CURL, REMOVED].join('\n') },
  ]);
}

const SITE = 'usr/lib/python3/dist-packages';
const metadata = (name: string, version: string) => `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\nSummary: fixture\n\nLong description with a line\nName: not-a-header\n`;

/** The application: an npm project (lockfile + installed lodash), a tool with left-pad, Python packages. */
export function appLayer(): Layer {
  const lock = {
    name: 'app',
    lockfileVersion: 3,
    packages: {
      '': { name: 'app', version: '1.0.0' },
      'node_modules/lodash': { version: '4.17.20' },
      'node_modules/minimist': { version: '1.2.8' },
    },
  };
  const entries: TarEntry[] = [
    { type: 'file', path: 'app/package-lock.json', data: JSON.stringify(lock) },
    { type: 'file', path: 'app/node_modules/lodash/package.json', data: JSON.stringify({ name: 'lodash', version: '4.17.20' }) },
    { type: 'file', path: 'app/node_modules/lodash/lib/package.json', data: JSON.stringify({ name: 'not-a-package-root', version: '9.9.9' }) },
    { type: 'file', path: 'opt/tool/node_modules/left-pad/package.json', data: JSON.stringify({ name: 'left-pad', version: '1.1.0' }) },
    { type: 'file', path: `${SITE}/requests-2.30.0.dist-info/METADATA`, data: metadata('requests', '2.30.0') },
    { type: 'file', path: `${SITE}/urllib3-2.0.7.dist-info/METADATA`, data: metadata('urllib3', '2.0.7') },
    { type: 'file', path: `${SITE}/PyYAML-5.3.1.dist-info/METADATA`, data: metadata('PyYAML', '5.3.1') },
  ];
  return makeLayer(entries);
}

/** Removes curl (dpkg status rewritten), whites out PyYAML, makes opt/tool opaque. */
export function cleanupLayer(): Layer {
  return makeLayer([
    { type: 'file', path: 'var/lib/dpkg/status', data: [LIBSSL3, ZLIB].join('\n') },
    { type: 'file', path: `${SITE}/.wh.PyYAML-5.3.1.dist-info`, data: '' },
    { type: 'file', path: 'opt/tool/.wh..wh..opq', data: '' },
    { type: 'file', path: 'opt/tool/README', data: 'reinstalled later\n' },
  ]);
}

/** Debian 12 + app + cleanup: findings openssl (via libssl3), lodash, requests; nothing else. */
export function buildDebianAppImage(): BuiltImage {
  return makeImage([debianBaseLayer(), appLayer(), cleanupLayer()]);
}

export function alpineLayer(): Layer {
  const installed = [
    'C:Q1fixturechecksum=\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\nL:GPL-2.0-only\n',
    'C:Q1fixturechecksum=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n',
  ].join('\n');
  return makeLayer([
    { type: 'file', path: 'etc/os-release', data: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n' },
    { type: 'file', path: 'lib/apk/db/installed', data: installed },
  ]);
}

/** Alpine 3.19: finding busybox (no severity → UNKNOWN); libcrypto3 is already fixed. */
export function buildAlpineImage(): BuiltImage {
  return makeImage([alpineLayer()]);
}

/** Debian 12 with only packages that no fixture advisory affects. */
export function buildCleanImage(): BuiltImage {
  return makeImage([
    makeLayer([
      { type: 'file', path: 'etc/os-release', data: DEBIAN_OS_RELEASE },
      { type: 'file', path: 'var/lib/dpkg/status', data: ZLIB },
      { type: 'file', path: 'hello.txt', data: 'clean\n' },
    ]),
  ]);
}
