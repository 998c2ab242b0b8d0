// Helpers shared by the benchmark scripts (bench/*/): build staleness and a minimal tar writer.
import { readdirSync, existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

function walk(dir, ext, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, ext, out);
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out;
}

/** A build is needed when any src/**\/*.ts has no dist twin, or is newer than it, or tsconfig.json is newer than the oldest twin. */
export function stale(root) {
  const src = join(root, 'src');
  const dist = join(root, 'dist');
  if (!existsSync(join(dist, 'cli', 'main.js'))) return true;
  const cfg = statSync(join(root, 'tsconfig.json')).mtimeMs;
  for (const f of walk(src, '.ts')) {
    if (f.endsWith('.d.ts')) continue;
    const twin = join(dist, relative(src, f)).replace(/\.ts$/, '.js');
    if (!existsSync(twin)) return true;
    const t = statSync(twin).mtimeMs;
    if (statSync(f).mtimeMs > t || cfg > t) return true;
  }
  return false;
}

/** A minimal ustar header for one regular file (mode 0644, fixed mtime). */
export function tarHeader(name, size) {
  const h = Buffer.alloc(512, 0);
  const put = (s, off, len) => h.write(s, off, len, 'ascii');
  const oct = (n, len) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(1700000000, 12), 136, 12);
  h.fill(' ', 148, 156); // checksum field counts as spaces while summing
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}
