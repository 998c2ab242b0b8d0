// What a layer contributes to the image's package inventory, as plain data (cached per layer
// digest as JSON): the package databases and manifests it holds, parsed, plus its whiteouts.
// Paths are relative to the image root, normalised ("var/lib/dpkg/status").

export type PackageType = 'deb' | 'apk' | 'npm' | 'pypi';

export interface RawPackage {
  type: PackageType;
  name: string;
  version: string;
  /** dpkg Source: / apk origin, when different from name. */
  sourceName?: string;
  sourceVersion?: string;
  arch?: string;
}

export interface OsRelease {
  id: string;
  idLike: string[];
  versionId: string;
  prettyName?: string;
}

export type FileFact =
  | { kind: 'os-release'; os: OsRelease }
  /** `owns`: language-package files (METADATA, package.json) this OS package database says it installed. */
  | { kind: 'packages'; packages: RawPackage[]; owns?: string[] }
  /** The path exists in this layer but could not be used (too large, unparsable): it still hides lower layers. */
  | { kind: 'unreadable'; reason: string };

export interface LayerFacts {
  files: Record<string, FileFact>;
  /** Paths deleted by ".wh.<name>" entries (the path itself and everything below it). */
  whiteouts: string[];
  /** Directories whose lower-layer contents are hidden (".wh..wh..opq"). */
  opaqueDirs: string[];
  notes: string[];
}

export type FileKind = 'os-release' | 'dpkg-status' | 'dpkg-file-list' | 'apk-installed' | 'npm-lock' | 'npm-package' | 'python-metadata';

const NPM_PACKAGE_ROOT = /(^|\/)node_modules\/(@[^/]+\/)?[^/@.][^/]*\/package\.json$/;

/** Which files matter to the catalogers; everything else in a layer is skipped unread. */
export function classifyPath(path: string, type: 'file' | 'other' = 'file'): FileKind | undefined {
  if (path === 'etc/os-release' || path === 'usr/lib/os-release') return 'os-release';
  if (path === 'var/lib/dpkg/status') return 'dpkg-status';
  if (path.startsWith('var/lib/dpkg/status.d/') && !path.slice(22).includes('/')) return path.endsWith('.md5sums') ? 'dpkg-file-list' : 'dpkg-status';
  if (path.startsWith('var/lib/dpkg/info/') && path.endsWith('.list') && !path.slice(18).includes('/')) return 'dpkg-file-list';
  if (path === 'lib/apk/db/installed') return 'apk-installed';
  if (path.endsWith('package-lock.json') && (path === 'package-lock.json' || path.endsWith('/package-lock.json')) && !path.includes('node_modules/')) return 'npm-lock';
  if (NPM_PACKAGE_ROOT.test(path)) return 'npm-package';
  if (/\.dist-info\/METADATA$/.test(path) || /\.egg-info\/PKG-INFO$/.test(path)) return 'python-metadata';
  if (type === 'file' && path.endsWith('.egg-info')) return 'python-metadata'; // a single-file egg-info
  return undefined;
}

/** Language package manifests: an OS package that installed one owns it (see `owns`). */
export function isLanguagePackageFile(path: string): boolean {
  const kind = classifyPath(path);
  return kind === 'npm-package' || kind === 'npm-lock' || kind === 'python-metadata';
}

/** Splits "Key: value" stanzas separated by blank lines (dpkg status, apk installed, RFC 822 metadata). */
export function stanzas(text: string, separator: RegExp): Array<Map<string, string>> {
  const out: Array<Map<string, string>> = [];
  for (const block of text.split(/\r?\n\s*\r?\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(' ') || line.startsWith('\t')) continue; // continuation lines
      const m = separator.exec(line);
      if (m && !fields.has(m[1]!)) fields.set(m[1]!, m[2]!.trim());
    }
    if (fields.size > 0) out.push(fields);
  }
  return out;
}
