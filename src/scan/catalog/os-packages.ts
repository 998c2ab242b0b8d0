// Operating-system package databases: os-release, dpkg status (and distroless status.d/*), apk installed.
import { isLanguagePackageFile, stanzas, type OsRelease, type RawPackage } from './facts.js';

export function parseOsRelease(text: string): OsRelease {
  const kv = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    kv.set(m[1]!, v.replace(/\\(["'$`\\])/g, '$1'));
  }
  const os: OsRelease = { id: (kv.get('ID') ?? '').toLowerCase(), idLike: (kv.get('ID_LIKE') ?? '').toLowerCase().split(/\s+/).filter(Boolean), versionId: kv.get('VERSION_ID') ?? '' };
  const pretty = kv.get('PRETTY_NAME');
  if (pretty) os.prettyName = pretty;
  return os;
}

/** dpkg's status file: installed packages only ("install ok installed"); status.d files may omit Status. */
export function parseDpkgStatus(text: string): RawPackage[] {
  const out: RawPackage[] = [];
  for (const f of stanzas(text, /^([A-Za-z0-9-]+):\s?(.*)$/)) {
    const name = f.get('Package');
    const version = f.get('Version');
    if (!name || !version) continue;
    const status = f.get('Status');
    if (status !== undefined && status.split(/\s+/)[2] !== 'installed') continue;
    const pkg: RawPackage = { type: 'deb', name, version };
    const source = f.get('Source');
    if (source) {
      // "Source: openssl (3.0.11-1~deb12u1)": the source version is given only when it differs.
      const m = /^(\S+)(?:\s+\((\S+)\))?$/.exec(source);
      if (m && m[1] !== name) pkg.sourceName = m[1]!;
      if (m?.[2] && m[2] !== version) pkg.sourceVersion = m[2];
    }
    const arch = f.get('Architecture');
    if (arch) pkg.arch = arch;
    out.push(pkg);
  }
  return out;
}

/** apk's installed database: "P:" name, "V:" version, "o:" origin (the source package), "A:" arch. */
export function parseApkInstalled(text: string): RawPackage[] {
  const out: RawPackage[] = [];
  for (const f of stanzas(text, /^([A-Za-z]):(.*)$/)) {
    const name = f.get('P');
    const version = f.get('V');
    if (!name || !version) continue;
    const pkg: RawPackage = { type: 'apk', name, version };
    const origin = f.get('o');
    if (origin && origin !== name) pkg.sourceName = origin;
    const arch = f.get('A');
    if (arch) pkg.arch = arch;
    out.push(pkg);
  }
  return out;
}

/**
 * Language-package files listed in a dpkg file list: info/<pkg>.list (absolute paths) or a
 * distroless status.d/<pkg>.md5sums ("<md5>  <relative path>").
 */
export function parseDpkgFileList(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const path = (/^[0-9a-f]{32}\s+(.+)$/.exec(line)?.[1] ?? line).trim().replace(/^\/+/, '');
    if (path && isLanguagePackageFile(path)) out.push(path);
  }
  return out;
}

/** Language-package files apk installed: "F:" (directory) then its "R:" (file) lines. */
export function parseApkOwnedFiles(text: string): string[] {
  const out: string[] = [];
  let dir = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('F:')) dir = line.slice(2).trim();
    else if (line.startsWith('R:')) {
      const path = dir ? `${dir}/${line.slice(2).trim()}` : line.slice(2).trim();
      if (isLanguagePackageFile(path)) out.push(path);
    } else if (line.trim() === '') dir = '';
  }
  return out;
}
