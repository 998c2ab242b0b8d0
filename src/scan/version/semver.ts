// Semantic Versioning 2.0.0 precedence (semver.org §11), as node-semver compares: major, minor,
// patch numerically; a pre-release sorts before its release; pre-release identifiers compare
// numerically when both are numeric, numeric < alphanumeric, ASCII otherwise, and a longer set
// wins when all shared identifiers are equal. Build metadata is ignored. A leading "v" or "="
// is accepted (node-semver's loose form).

export interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  prerelease: string[];
  build: string[];
}

const NUM = '0|[1-9]\\d*';
const IDENT = '[0-9A-Za-z-]+';
const SEMVER_RE = new RegExp(`^[v=]?\\s*(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${IDENT}(?:\\.${IDENT})*))?(?:\\+(${IDENT}(?:\\.${IDENT})*))?$`);

export function parseSemver(value: string): SemVer | null {
  const m = SEMVER_RE.exec(value.trim());
  if (!m) return null;
  const prerelease = m[4] ? m[4].split('.') : [];
  // §9: numeric identifiers must not have leading zeros.
  if (prerelease.some((p) => /^\d+$/.test(p) && p.length > 1 && p.startsWith('0'))) return null;
  return { major: BigInt(m[1]!), minor: BigInt(m[2]!), patch: BigInt(m[3]!), prerelease, build: m[5] ? m[5].split('.') : [] };
}

export function isValidSemver(value: string): boolean {
  return parseSemver(value) !== null;
}

const cmpBig = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

function compareIdentifier(a: string, b: string): number {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) return cmpBig(BigInt(a), BigInt(b));
  if (an) return -1;
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Negative, zero or positive as a sorts before, equal to or after b. Throws on an invalid version. */
export function compareSemver(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x) throw new Error(`invalid semantic version "${a}"`);
  if (!y) throw new Error(`invalid semantic version "${b}"`);
  const core = cmpBig(x.major, y.major) || cmpBig(x.minor, y.minor) || cmpBig(x.patch, y.patch);
  if (core !== 0) return core;
  if (x.prerelease.length === 0 || y.prerelease.length === 0) return (y.prerelease.length > 0 ? 1 : 0) - (x.prerelease.length > 0 ? 1 : 0);
  for (let i = 0; i < Math.max(x.prerelease.length, y.prerelease.length); i++) {
    const p = x.prerelease[i];
    const q = y.prerelease[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const r = compareIdentifier(p, q);
    if (r !== 0) return r;
  }
  return 0;
}
