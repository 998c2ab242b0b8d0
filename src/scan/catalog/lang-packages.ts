// Language package manifests: npm lockfiles (v1 nested "dependencies", v2/v3 flat "packages"),
// installed node_modules/**/package.json, Python *.dist-info/METADATA and *.egg-info/PKG-INFO.
import { stanzas, type RawPackage } from './facts.js';

interface LockV1Dep {
  version?: string;
  dependencies?: Record<string, LockV1Dep>;
}

export function parseNpmLock(text: string): RawPackage[] {
  const doc = JSON.parse(text) as { lockfileVersion?: number; packages?: Record<string, { version?: string; name?: string; link?: boolean }>; dependencies?: Record<string, LockV1Dep> };
  const out: RawPackage[] = [];
  const seen = new Set<string>();
  const add = (name: string, version: string | undefined) => {
    if (!name || !version || seen.has(`${name}@${version}`)) return;
    seen.add(`${name}@${version}`);
    out.push({ type: 'npm', name, version });
  };
  if (doc.packages && typeof doc.packages === 'object') {
    for (const [path, p] of Object.entries(doc.packages)) {
      // "" is the project itself; paths outside node_modules are workspace members, links point at them.
      const at = path.lastIndexOf('node_modules/');
      if (at === -1 || p.link) continue;
      add(p.name ?? path.slice(at + 'node_modules/'.length), p.version);
    }
    return out;
  }
  const walk = (deps: Record<string, LockV1Dep> | undefined, depth: number) => {
    if (!deps || depth > 64) return;
    for (const [name, d] of Object.entries(deps)) {
      add(name, d.version);
      walk(d.dependencies, depth + 1);
    }
  };
  walk(doc.dependencies, 0);
  return out;
}

export function parseNpmPackageJson(text: string): RawPackage[] {
  const doc = JSON.parse(text) as { name?: unknown; version?: unknown };
  if (typeof doc.name !== 'string' || typeof doc.version !== 'string' || !doc.name || !doc.version) return [];
  return [{ type: 'npm', name: doc.name, version: doc.version }];
}

/** Core metadata (RFC 822 headers up to the first blank line): Name and Version. */
export function parsePythonMetadata(text: string): RawPackage[] {
  const head = stanzas(text.split(/\r?\n\r?\n/)[0] ?? '', /^([A-Za-z0-9-]+):\s?(.*)$/)[0];
  const name = head?.get('Name');
  const version = head?.get('Version');
  return name && version ? [{ type: 'pypi', name, version }] : [];
}
