// Applies layers in order (whiteouts and opaque directories hide what lower layers added) and
// turns the surviving package databases into Packages with their OSV ecosystem and purl.
import type { Ecosystem, Package } from '../scanner.js';
import type { FileFact, LayerFacts, OsRelease, RawPackage } from './facts.js';

/** The image's view of the cataloged files after applying every layer, bottom first. */
export function applyLayers(layers: LayerFacts[]): Map<string, FileFact> {
  const files = new Map<string, FileFact>();
  const removeTree = (root: string) => {
    for (const path of [...files.keys()]) if (root === '' || path === root || path.startsWith(root + '/')) files.delete(path);
  };
  const removeBelow = (dir: string) => {
    for (const path of [...files.keys()]) if (dir === '' || path.startsWith(dir + '/')) files.delete(path);
  };
  for (const layer of layers) {
    // A layer's whiteouts apply to the layers below it, never to its own entries.
    for (const dir of layer.opaqueDirs) removeBelow(dir);
    for (const path of layer.whiteouts) removeTree(path);
    for (const [path, fact] of Object.entries(layer.files)) files.set(path, fact);
  }
  return files;
}

export function osReleaseOf(files: Map<string, FileFact>): OsRelease | undefined {
  for (const p of ['etc/os-release', 'usr/lib/os-release']) {
    const f = files.get(p);
    if (f?.kind === 'os-release') return f.os;
  }
  return undefined;
}

interface Distro {
  ecosystem: Ecosystem;
  osv: string;
  purlNamespace: string;
  purlDistro?: string;
}

function dpkgDistro(os: OsRelease | undefined): Distro {
  const ubuntu = os && (os.id === 'ubuntu' || (os.id !== 'debian' && os.idLike.includes('ubuntu')));
  if (ubuntu) return { ecosystem: 'Ubuntu', osv: os.versionId ? `Ubuntu:${os.versionId}` : 'Ubuntu', purlNamespace: 'ubuntu', ...(os.versionId ? { purlDistro: `ubuntu-${os.versionId}` } : {}) };
  const major = os?.id === 'debian' ? os.versionId.split('.')[0] : undefined;
  return { ecosystem: 'Debian', osv: major ? `Debian:${major}` : 'Debian', purlNamespace: 'debian', ...(major ? { purlDistro: `debian-${major}` } : {}) };
}

function apkDistro(os: OsRelease | undefined): Distro {
  const alpine = os?.id === 'alpine' ? os : undefined;
  const m = alpine ? /^(\d+)\.(\d+)/.exec(alpine.versionId) : null;
  return { ecosystem: 'Alpine', osv: m ? `Alpine:v${m[1]}.${m[2]}` : 'Alpine', purlNamespace: 'alpine', ...(alpine?.versionId ? { purlDistro: alpine.versionId } : {}) };
}

/** PEP 503 name normalisation, for matching and purls. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function purlOf(raw: RawPackage, distro: Distro | undefined): string {
  const v = encodeURIComponent(raw.version);
  switch (raw.type) {
    case 'deb':
    case 'apk': {
      const q = new URLSearchParams();
      if (raw.arch) q.set('arch', raw.arch);
      if (distro?.purlDistro) q.set('distro', distro.purlDistro);
      const qs = q.toString();
      return `pkg:${raw.type}/${distro!.purlNamespace}/${encodeURIComponent(raw.name)}@${v}${qs ? `?${qs}` : ''}`;
    }
    case 'npm': {
      const [scope, name] = raw.name.startsWith('@') ? raw.name.split('/', 2) : [undefined, raw.name];
      return `pkg:npm/${scope ? `${encodeURIComponent(scope)}/` : ''}${encodeURIComponent(name!)}@${v}`;
    }
    case 'pypi':
      return `pkg:pypi/${normalizePypiName(raw.name)}@${v}`;
  }
}

/** The project directory a node_modules path or lockfile belongs to ("app" for app/node_modules/x/package.json). */
function npmProjectRoot(path: string): string {
  const at = path.indexOf('node_modules/');
  if (at !== -1) return path.slice(0, Math.max(0, at - 1));
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

/**
 * Packages of the image, sorted; lockfile entries also installed under the same project count
 * once, and language packages installed by the OS package manager count as the OS package only.
 */
export function inventory(files: Map<string, FileFact>): Package[] {
  const os = osReleaseOf(files);
  const deb = dpkgDistro(os);
  const apk = apkDistro(os);
  const installedNpm = new Set<string>();
  for (const [path, f] of files) {
    if (f.kind !== 'packages' || !path.endsWith('/package.json')) continue;
    for (const p of f.packages) if (p.type === 'npm') installedNpm.add(`${npmProjectRoot(path)}|${p.name}@${p.version}`);
  }
  // Python/npm packages that an OS package installed (python3-requests) are that OS package's:
  // its distribution's advisories cover them, with the distribution's patched versions.
  const ownedByOs = new Set<string>();
  for (const f of files.values()) if (f.kind === 'packages') for (const p of f.owns ?? []) ownedByOs.add(p);
  const out: Package[] = [];
  for (const [path, f] of files) {
    if (f.kind !== 'packages') continue;
    const isLock = path.endsWith('package-lock.json');
    for (const raw of f.packages) {
      if (isLock && installedNpm.has(`${npmProjectRoot(path)}|${raw.name}@${raw.version}`)) continue;
      if ((raw.type === 'pypi' || raw.type === 'npm') && ownedByOs.has(path)) continue;
      const distro = raw.type === 'deb' ? deb : raw.type === 'apk' ? apk : undefined;
      const ecosystem: Ecosystem = distro?.ecosystem ?? (raw.type === 'npm' ? 'npm' : 'PyPI');
      const pkg: Package = { ecosystem, name: raw.name, version: raw.version, source: path, osvEcosystem: distro?.osv ?? ecosystem, purl: purlOf(raw, distro) };
      if (raw.sourceName) pkg.sourceName = raw.sourceName;
      if (raw.sourceVersion) pkg.sourceVersion = raw.sourceVersion;
      out.push(pkg);
    }
  }
  const key = (p: Package) => `${p.ecosystem}\0${p.name}\0${p.version}\0${p.source}`;
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
