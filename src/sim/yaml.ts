// A tiny YAML subset for scenario files, so they read like config without a YAML dependency:
// block maps and lists by indentation, `- ` items (scalars or maps), flow lists `[a, b]` and
// maps `{a: 1}`, quoted or bare scalars, numbers, booleans, null, `#` comments. Anchors, tags,
// multi-line strings and documents are not supported and fail loudly. A file that starts with
// `{` is read as JSON.

export type Yaml = string | number | boolean | null | Yaml[] | { [k: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  no: number;
}

export function parseYaml(src: string): Yaml {
  if (src.trimStart().startsWith('{')) return JSON.parse(src) as Yaml;
  const lines: Line[] = [];
  src.split(/\r?\n/).forEach((raw, i) => {
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '' || text.trim() === '---') return;
    if (/^\t| \t/.test(text.slice(0, text.length - text.trimStart().length))) throw new Error(`line ${i + 1}: tabs are not allowed for indentation`);
    lines.push({ indent: text.length - text.trimStart().length, text: text.trim(), no: i + 1 });
  });
  if (lines.length === 0) return null;
  const [value, next] = block(lines, 0, lines[0]!.indent);
  if (next < lines.length) throw new Error(`line ${lines[next]!.no}: unexpected indentation`);
  return value;
}

function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

/** Parses the block starting at lines[i] whose items sit at `indent`; returns [value, next index]. */
function block(lines: Line[], i: number, indent: number): [Yaml, number] {
  const first = lines[i]!;
  if (first.text.startsWith('- ') || first.text === '-') {
    const out: Yaml[] = [];
    while (i < lines.length && lines[i]!.indent === indent && (lines[i]!.text.startsWith('- ') || lines[i]!.text === '-')) {
      const l = lines[i]!;
      const rest = l.text.slice(1).trim();
      if (rest === '') {
        // "-" alone: the item is the nested block below.
        if (i + 1 >= lines.length || lines[i + 1]!.indent <= indent) throw new Error(`line ${l.no}: empty list item`);
        const [v, n] = block(lines, i + 1, lines[i + 1]!.indent);
        out.push(v);
        i = n;
      } else if (isKeyValue(rest)) {
        // "- key: v" starts a map whose other keys are indented to where "key" starts.
        const inner = indent + (l.text.length - rest.length);
        const sub: Line[] = [{ indent: inner, text: rest, no: l.no }];
        let j = i + 1;
        while (j < lines.length && lines[j]!.indent >= inner) sub.push(lines[j++]!);
        const [v, n] = block(sub, 0, inner);
        if (n < sub.length) throw new Error(`line ${sub[n]!.no}: unexpected indentation`);
        out.push(v);
        i = j;
      } else {
        out.push(scalar(rest, l.no));
        i++;
      }
    }
    return [out, i];
  }
  const out: { [k: string]: Yaml } = {};
  while (i < lines.length && lines[i]!.indent === indent) {
    const l = lines[i]!;
    if (!isKeyValue(l.text)) throw new Error(`line ${l.no}: expected "key: value", got "${l.text}"`);
    const colon = keyEnd(l.text);
    const key = unquote(l.text.slice(0, colon).trim());
    const rest = l.text.slice(colon + 1).trim();
    if (key in out) throw new Error(`line ${l.no}: duplicate key "${key}"`);
    if (rest !== '') {
      out[key] = scalar(rest, l.no);
      i++;
    } else if (i + 1 < lines.length && lines[i + 1]!.indent > indent) {
      const [v, n] = block(lines, i + 1, lines[i + 1]!.indent);
      out[key] = v;
      i = n;
    } else if (i + 1 < lines.length && lines[i + 1]!.indent === indent && lines[i + 1]!.text.startsWith('- ')) {
      // Lists may sit at the same indentation as their key.
      const [v, n] = block(lines, i + 1, indent);
      out[key] = v;
      i = n;
    } else {
      out[key] = null;
      i++;
    }
  }
  if (i < lines.length && lines[i]!.indent > indent) throw new Error(`line ${lines[i]!.no}: unexpected indentation`);
  return [out, i];
}

function keyEnd(s: string): number {
  if (s.startsWith('"') || s.startsWith("'")) {
    const close = s.indexOf(s[0]!, 1);
    return s.indexOf(':', close);
  }
  const m = /:(\s|$)/.exec(s);
  return m ? m.index : -1;
}

function isKeyValue(s: string): boolean {
  return !s.startsWith('[') && !s.startsWith('{') && keyEnd(s) > 0;
}

function unquote(s: string): string {
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'")))) {
    return s.startsWith('"') ? (JSON.parse(s) as string) : s.slice(1, -1).replace(/''/g, "'");
  }
  return s;
}

function scalar(s: string, no: number): Yaml {
  if (s.startsWith('[') || s.startsWith('{')) {
    const p = { s, i: 0, no };
    const v = flow(p);
    skipWs(p);
    if (p.i !== s.length) throw new Error(`line ${no}: trailing text after "${s.slice(0, p.i)}"`);
    return v;
  }
  if (/^[&*!|>]/.test(s)) throw new Error(`line ${no}: "${s[0]}" (anchors, tags, block scalars) is not supported`);
  if (s.startsWith('"') || s.startsWith("'")) return unquote(s);
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (s === 'null' || s === '~') return null;
  if (/^[-+]?(\d[\d_]*)(\.\d+)?([eE][-+]?\d+)?$/.test(s)) return Number(s.replace(/_/g, ''));
  return s;
}

function skipWs(p: { s: string; i: number }): void {
  while (p.i < p.s.length && /\s/.test(p.s[p.i]!)) p.i++;
}

function flow(p: { s: string; i: number; no: number }): Yaml {
  skipWs(p);
  const c = p.s[p.i];
  if (c === '[' || c === '{') {
    const close = c === '[' ? ']' : '}';
    p.i++;
    const arr: Yaml[] = [];
    const obj: { [k: string]: Yaml } = {};
    for (;;) {
      skipWs(p);
      if (p.s[p.i] === close) {
        p.i++;
        return c === '[' ? arr : obj;
      }
      if (c === '[') arr.push(flow(p));
      else {
        const colon = p.s.indexOf(':', p.i);
        if (colon < 0) throw new Error(`line ${p.no}: expected "key: value" in {...}`);
        const key = unquote(p.s.slice(p.i, colon).trim());
        p.i = colon + 1;
        obj[key] = flow(p);
      }
      skipWs(p);
      if (p.s[p.i] === ',') p.i++;
      else if (p.s[p.i] !== close) throw new Error(`line ${p.no}: expected "," or "${close}" at "${p.s.slice(p.i, p.i + 10)}"`);
    }
  }
  // A scalar inside a flow collection ends at "," or the closing bracket.
  let j = p.i;
  if (p.s[j] === '"' || p.s[j] === "'") {
    j = p.s.indexOf(p.s[j]!, j + 1) + 1;
    if (j === 0) throw new Error(`line ${p.no}: unterminated string`);
  } else while (j < p.s.length && !/[,\]}]/.test(p.s[j]!)) j++;
  const v = scalar(p.s.slice(p.i, j).trim(), p.no);
  p.i = j;
  return v;
}
