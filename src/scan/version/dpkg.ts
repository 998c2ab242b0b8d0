// Debian version comparison (Debian Policy §5.6.12; dpkg's verrevcmp): [epoch:]upstream[-revision].
// Letters sort before non-letters, '~' before everything (even the end), digit runs numerically.

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** Splits and validates a version as dpkg's parseversion does (an empty revision is allowed: "1.0-"). */
export function parseDpkgVersion(value: string): DpkgVersion {
  const v = value.trim();
  if (v === '') throw new Error('empty Debian version');
  const colon = v.indexOf(':');
  let epoch = 0;
  let rest = v;
  if (colon !== -1) {
    const e = v.slice(0, colon);
    if (!/^\d+$/.test(e)) throw new Error(`invalid epoch in Debian version "${value}"`);
    epoch = Number(e);
    if (epoch > 2_147_483_647) throw new Error(`epoch too large in Debian version "${value}"`);
    rest = v.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  const upstream = dash === -1 ? rest : rest.slice(0, dash);
  const revision = dash === -1 ? '' : rest.slice(dash + 1);
  if (upstream === '' || !/^[A-Za-z0-9.+~:-]+$/.test(upstream) || !/^[A-Za-z0-9.+~]*$/.test(revision)) {
    throw new Error(`invalid Debian version "${value}"`);
  }
  return { epoch, upstream, revision };
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isAlpha = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** Sort weight of one character of a non-digit run; NaN (end of string) weighs 0. */
function order(c: number): number {
  if (Number.isNaN(c) || isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126 /* ~ */) return -1;
  return c + 256;
}

/** dpkg's verrevcmp: compares one upstream or revision part. */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Negative, zero or positive as a sorts before, equal to or after b. Throws on an invalid version. */
export function compareDpkg(a: string, b: string): number {
  const va = parseDpkgVersion(a);
  const vb = parseDpkgVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch;
  const up = verrevcmp(va.upstream, vb.upstream);
  if (up !== 0) return Math.sign(up);
  return Math.sign(verrevcmp(va.revision, vb.revision));
}
