// A small streaming tar reader: ustar, GNU long names/links ('L'/'K'), PAX extended headers ('x'
// path/linkpath/size) and GNU base-256 sizes. It yields one header at a time; the caller reads an
// entry's body only when it wants it, and everything else is skipped chunk by chunk, so a layer is
// never held in memory (only the bodies asked for, up to a cap).
import { posix } from 'node:path';

const BLOCK = 512;
/** Metadata entries (long names, PAX headers) larger than this are refused: they are never legitimate. */
const MAX_META_BYTES = 1 << 20;

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarHeader {
  /** Normalised: no leading "/" or "./", no trailing "/", no "." or ".." segments. */
  path: string;
  type: TarEntryType;
  size: number;
  /** Target of a symlink or hard link (hard links: normalised like `path`). */
  linkname: string;
  mode: number;
}

export interface TarEntry extends TarHeader {
  /** The whole body; only valid before the next entry is requested. Throws TarError above `maxBytes`. */
  read(maxBytes?: number): Promise<Buffer>;
}

export class TarError extends Error {
  override readonly name = 'TarError';
}

/** A queue of chunks with exact-length reads and cheap skips. */
class ByteSource {
  private readonly chunks: Buffer[] = [];
  private offset = 0;
  private buffered = 0;
  private ended = false;
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length > 0) {
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
  }

  private advance(n: number): void {
    this.offset += n;
    this.buffered -= n;
    while (this.chunks.length > 0 && this.offset >= this.chunks[0]!.length) {
      this.offset -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }

  /** Exactly n bytes; null at a clean end of input; throws when the input ends part-way. */
  async read(n: number): Promise<Buffer | null> {
    if (n === 0) return Buffer.alloc(0);
    await this.fill(n);
    if (this.buffered < n) {
      if (this.buffered === 0) return null;
      throw new TarError(`truncated archive: wanted ${n} bytes, ${this.buffered} left`);
    }
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length - this.offset, n - written);
      c.copy(out, written, this.offset, this.offset + take);
      written += take;
      this.advance(take);
    }
    return out;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.buffered === 0) await this.fill(1);
      if (this.buffered === 0) throw new TarError(`truncated archive: ${n} bytes missing`);
      const take = Math.min(n, this.buffered);
      this.advance(take);
      n -= take;
    }
  }
}

function cString(b: Buffer, off: number, len: number): string {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

/** Octal (NUL/space terminated) or GNU base-256 (high bit set) numbers. */
function numeric(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = cString(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`bad numeric header field "${s}"`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = numeric(h, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** Strips absolute and relative prefixes and resolves "." / ".." without ever leaving the root. */
export function normalizeTarPath(p: string): string {
  const n = posix.normalize('/' + p).replace(/^\/+/, '').replace(/\/+$/, '');
  return n === '.' ? '' : n;
}

/** PAX records: "<len> <key>=<value>\n" repeated. */
function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < body.length) {
    const space = body.indexOf(0x20, off);
    if (space === -1) break;
    const len = Number(body.subarray(off, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0 || off + len > body.length) throw new TarError('bad PAX record length');
    const record = body.subarray(space + 1, off + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    off += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '5': 'dir' };

/** Reads a tar stream entry by entry. Stops at the end-of-archive marker or the end of input. */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry, void, undefined> {
  const src = new ByteSource(source[Symbol.asyncIterator]());
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  for (;;) {
    const header = await src.read(BLOCK);
    if (!header) return;
    if (header.every((b) => b === 0)) return;
    if (!checksumOk(header)) throw new TarError('bad tar header checksum (not a tar archive, or corrupt)');
    const typeflag = String.fromCharCode(header[156]!);
    let size = numeric(header, 124, 12);
    const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      if (size > MAX_META_BYTES) throw new TarError(`tar metadata entry of ${size} bytes is too large`);
      const body = Buffer.from((await src.read(size)) ?? Buffer.alloc(0));
      await src.skip(padded(size) - size);
      if (typeflag === 'L') longName = cString(body, 0, body.length);
      else if (typeflag === 'K') longLink = cString(body, 0, body.length);
      else if (typeflag === 'x') pax = { ...pax, ...parsePax(body) };
      // 'g' (global PAX) carries defaults we don't need (paths in it are not per-entry).
      continue;
    }

    const magic = header.subarray(257, 263).toString('latin1');
    const prefix = magic === 'ustar\0' ? cString(header, 345, 155) : '';
    const name = cString(header, 0, 100);
    const rawPath = pax['path'] ?? longName ?? (prefix ? `${prefix}/${name}` : name);
    const rawLink = pax['linkpath'] ?? longLink ?? cString(header, 157, 100);
    if (pax['size'] !== undefined) size = Number(pax['size']);
    longName = undefined;
    longLink = undefined;
    pax = {};

    let type = TYPES[typeflag] ?? 'other';
    if (type === 'file' && rawPath.endsWith('/')) type = 'dir'; // old tars mark directories by a trailing slash
    let consumed = 0;
    let current = true;
    const entry: TarEntry = {
      path: normalizeTarPath(rawPath),
      type,
      size,
      linkname: type === 'hardlink' ? normalizeTarPath(rawLink) : rawLink,
      mode: numeric(header, 100, 8),
      async read(maxBytes = Number.MAX_SAFE_INTEGER) {
        if (!current || consumed > 0) throw new TarError(`body of ${entry.path} is no longer available`);
        if (size > maxBytes) throw new TarError(`${entry.path} is ${size} bytes, more than the ${maxBytes} read here`);
        consumed = size;
        return Buffer.from((await src.read(size)) ?? Buffer.alloc(0));
      },
    };
    yield entry;
    current = false;
    await src.skip(padded(size) - consumed);
  }
}
