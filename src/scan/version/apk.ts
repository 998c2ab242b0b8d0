// Alpine apk version comparison, after apk-tools' version.c:
//   digit{.digit}...{letter}{_suffix{number}}...{~hash}{-r#}
// Pre-release suffixes (_alpha < _beta < _pre < _rc) sort before the bare version, post-release
// ones (_cvs < _svn < _git < _hg < _p) after it. A dotted component with a leading zero compares
// as a string (1.02 < 1.1). Where a version leaves the grammar, apk falls back to a string sort.

/** Token kinds in grammar order; when two versions agree up to where their kinds differ, the later kind sorts lower. */
const enum Tok {
  InitialDigit,
  Digit,
  Letter,
  Suffix,
  SuffixNo,
  CommitHash,
  RevisionNo,
  End,
  Invalid,
}

interface Token {
  kind: Tok;
  text: string;
}

const PRE_SUFFIXES = ['alpha', 'beta', 'pre', 'rc'];
const POST_SUFFIXES = ['cvs', 'svn', 'git', 'hg', 'p'];

/** <0 for pre-release suffixes, >=0 for post-release; undefined when unknown. */
function suffixValue(s: string): number | undefined {
  const pre = PRE_SUFFIXES.indexOf(s);
  if (pre !== -1) return pre - PRE_SUFFIXES.length;
  const post = POST_SUFFIXES.indexOf(s);
  return post === -1 ? undefined : post;
}

/**
 * Splits a version into tokens, in grammar order. Where the text leaves the grammar the list ends
 * with an Invalid token (apk compares up to that point, then falls back to a string sort).
 */
export function tokenizeApk(v: string): Token[] {
  const out: Token[] = [];
  let pos = 0;
  const take = (re: RegExp): string | undefined => {
    re.lastIndex = pos;
    const m = re.exec(v);
    if (!m) return undefined;
    pos += m[0].length;
    return m[1] ?? m[0];
  };
  const invalid = () => {
    out.push({ kind: Tok.Invalid, text: v.slice(pos) });
    return out;
  };
  const first = take(/\d+/y);
  if (first === undefined) return invalid();
  out.push({ kind: Tok.InitialDigit, text: first });
  for (let d = take(/\.(\d+)/y); d !== undefined; d = take(/\.(\d+)/y)) out.push({ kind: Tok.Digit, text: d });
  const letter = take(/[a-z]/y);
  if (letter !== undefined) out.push({ kind: Tok.Letter, text: letter });
  for (let s = take(/_([a-z]+)/y); s !== undefined; s = take(/_([a-z]+)/y)) {
    if (suffixValue(s) === undefined) return invalid();
    out.push({ kind: Tok.Suffix, text: s });
    const n = take(/\d+/y);
    if (n !== undefined) out.push({ kind: Tok.SuffixNo, text: n });
  }
  const hash = take(/~([0-9a-f]+)/y);
  if (hash !== undefined) out.push({ kind: Tok.CommitHash, text: hash });
  const rev = take(/-r(\d+)/y);
  if (rev !== undefined) out.push({ kind: Tok.RevisionNo, text: rev });
  if (pos !== v.length) return invalid();
  out.push({ kind: Tok.End, text: '' });
  return out;
}

export function isValidApkVersion(v: string): boolean {
  return tokenizeApk(v).at(-1)!.kind === Tok.End;
}

/** Compares digit strings numerically without overflowing. */
function compareNumeric(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

const stringOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function compareToken(kind: Tok, a: string, b: string): number {
  switch (kind) {
    case Tok.Digit:
      // A leading zero marks a fractional-style component: compare as text (1.02 < 1.1).
      if (a.startsWith('0') || b.startsWith('0')) return stringOrder(a, b);
      return compareNumeric(a, b);
    case Tok.InitialDigit:
    case Tok.SuffixNo:
    case Tok.RevisionNo:
      return compareNumeric(a, b);
    case Tok.Letter:
      return stringOrder(a, b);
    case Tok.Suffix:
      return suffixValue(a)! - suffixValue(b)!;
    case Tok.CommitHash:
    case Tok.End:
    case Tok.Invalid:
      return 0;
  }
}

/** Negative, zero or positive as a sorts before, equal to or after b. */
export function compareApk(a: string, b: string): number {
  const ta = tokenizeApk(a);
  const tb = tokenizeApk(b);
  for (let i = 0; ; i++) {
    const x = ta[i]!;
    const y = tb[i]!;
    if (x.kind === Tok.Invalid || y.kind === Tok.Invalid) return stringOrder(a, b);
    if (x.kind !== y.kind) {
      // Equal so far: the longer version wins, unless what it continues with is a pre-release suffix.
      if (x.kind === Tok.Suffix && suffixValue(x.text)! < 0) return -1;
      if (y.kind === Tok.Suffix && suffixValue(y.text)! < 0) return 1;
      return x.kind > y.kind ? -1 : 1;
    }
    if (x.kind === Tok.End) return 0;
    const r = compareToken(x.kind, x.text, y.text);
    if (r !== 0) return Math.sign(r);
  }
}
