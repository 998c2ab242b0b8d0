// Python version ordering and normalisation (PEP 440): [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local].
// Spellings are normalised (alpha→a, beta→b, c/pre/preview→rc, rev/r→post, "1.0-1" is a post
// release, "-"/"_" separators, leading "v", any case); trailing zeros of the release don't count
// (1.0 == 1.0.0); dev releases sort before pre-releases of the same release (1.0.dev0 < 1.0a0).

export interface Pep440Version {
  epoch: number;
  release: number[];
  pre?: { label: 'a' | 'b' | 'rc'; n: number };
  post?: number;
  dev?: number;
  local?: Array<number | string>;
}

const PATTERN = new RegExp(
  '^\\s*v?' +
    '(?:(\\d+)!)?' + // epoch
    '(\\d+(?:\\.\\d+)*)' + // release
    '(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\\d+)?)?' + // pre-release
    '(?:-(\\d+)|[-_.]?(post|rev|r)[-_.]?(\\d+)?)?' + // post-release
    '(?:[-_.]?(dev)[-_.]?(\\d+)?)?' + // development release
    '(?:\\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?' + // local version
    '\\s*$',
  'i',
);

export function parsePep440(value: string): Pep440Version | null {
  const m = PATTERN.exec(value);
  if (!m) return null;
  const v: Pep440Version = { epoch: m[1] ? Number(m[1]) : 0, release: m[2]!.split('.').map(Number) };
  if (m[3]) {
    const l = m[3].toLowerCase();
    v.pre = { label: l === 'alpha' || l === 'a' ? 'a' : l === 'beta' || l === 'b' ? 'b' : 'rc', n: m[4] ? Number(m[4]) : 0 };
  }
  if (m[5] !== undefined) v.post = Number(m[5]);
  else if (m[6]) v.post = m[7] ? Number(m[7]) : 0;
  if (m[8]) v.dev = m[9] ? Number(m[9]) : 0;
  if (m[10]) v.local = m[10].toLowerCase().split(/[-_.]/).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  return v;
}

export function isValidPep440(value: string): boolean {
  return parsePep440(value) !== null;
}

/** The canonical form (what PyPI and OSV lists use), e.g. "v1.0-ALPHA.1" → "1.0a1". Throws when invalid. */
export function normalizePep440(value: string): string {
  const v = parsePep440(value);
  if (!v) throw new Error(`invalid PEP 440 version "${value}"`);
  let s = (v.epoch ? `${v.epoch}!` : '') + v.release.join('.');
  if (v.pre) s += `${v.pre.label}${v.pre.n}`;
  if (v.post !== undefined) s += `.post${v.post}`;
  if (v.dev !== undefined) s += `.dev${v.dev}`;
  if (v.local) s += `+${v.local.join('.')}`;
  return s;
}

const PRE_RANK = { a: 0, b: 1, rc: 2 } as const;

function cmp(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareRelease(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const r = cmp(a[i] ?? 0, b[i] ?? 0);
    if (r !== 0) return r;
  }
  return 0;
}

/** The pre-release slot: a bare dev release sorts before any pre-release; a final release after all. */
function preKey(v: Pep440Version): [number, number] {
  if (v.pre) return [PRE_RANK[v.pre.label], v.pre.n];
  if (v.post === undefined && v.dev !== undefined) return [-Infinity, 0];
  return [Infinity, 0];
}

/** Local segments: numeric ones sort after alphanumeric ones; more segments win when a prefix is equal. */
function compareLocal(a: Array<number | string> | undefined, b: Array<number | string> | undefined): number {
  if (!a || !b) return (a ? 1 : 0) - (b ? 1 : 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') {
      if (x !== y) return cmp(x, y);
    } else if (typeof x === 'number') return 1;
    else if (typeof y === 'number') return -1;
    else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Negative, zero or positive as a sorts before, equal to or after b. Throws on an invalid version. */
export function comparePep440(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  if (!x) throw new Error(`invalid PEP 440 version "${a}"`);
  if (!y) throw new Error(`invalid PEP 440 version "${b}"`);
  const [xp, xn] = preKey(x);
  const [yp, yn] = preKey(y);
  return (
    cmp(x.epoch, y.epoch) ||
    compareRelease(x.release, y.release) ||
    cmp(xp, yp) ||
    cmp(xn, yn) ||
    cmp(x.post ?? -Infinity, y.post ?? -Infinity) ||
    cmp(x.dev ?? Infinity, y.dev ?? Infinity) ||
    compareLocal(x.local, y.local)
  );
}
