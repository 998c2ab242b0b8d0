import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { readTar, TarError, normalizeTarPath } from '../../../src/scan/layers/tar-reader.js';
import { tar } from '../../support/image.js';

interface RawHeader {
  name: string;
  typeflag: string;
  size?: number;
  linkname?: string;
  prefix?: string;
  magic?: 'ustar\0' | 'ustar  ';
  /** GNU base-256 encoding of the size field. */
  base256Size?: boolean;
}

/** One hand-made tar header block (ustar or GNU magic), checksum included. */
function header(h: RawHeader): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  const size = h.size ?? 0;
  if (h.base256Size) {
    b[124] = 0x80;
    b.writeUIntBE(size, 12 - 6 + 124, 6);
  } else b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write(h.typeflag, 156);
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  b.write(h.magic ?? 'ustar\0', 257, 'latin1');
  if ((h.magic ?? 'ustar\0') === 'ustar\0') b.write('00', 263);
  if (h.prefix) b.write(h.prefix, 345, 155, 'utf8');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const paxRecord = (k: string, v: string) => {
  const body = ` ${k}=${v}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
};
const END = Buffer.alloc(1024);

/** Feeds the archive in tiny chunks, so every header and body straddles chunk boundaries. */
async function* chunks(buf: Buffer, size = 7): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function entries(buf: Buffer, readAll = true, chunk = 7) {
  const out: Array<{ path: string; type: string; size: number; linkname: string; body?: string }> = [];
  for await (const e of readTar(chunks(buf, chunk))) {
    const row: (typeof out)[number] = { path: e.path, type: e.type, size: e.size, linkname: e.linkname };
    if (readAll && e.type === 'file') row.body = (await e.read()).toString('utf8');
    out.push(row);
  }
  return out;
}

test('tar reader: ustar entries (prefix + name for paths over 100 bytes) read or skipped in small chunks', async () => {
  const long = `a/${'d'.repeat(120)}/${'f'.repeat(90)}.txt`;
  const archive = tar([
    { type: 'dir', path: 'etc' },
    { type: 'file', path: './etc/os-release', data: 'ID=debian\n' },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: long, data: 'x'.repeat(1500) },
    { type: 'file', path: 'last', data: 'end' },
  ]);
  const all = await entries(archive);
  assert.deepEqual(
    all.map((e) => [e.path, e.type, e.size, e.linkname, e.body?.length]),
    [
      ['etc', 'dir', 0, '', undefined],
      ['etc/os-release', 'file', 10, '', 10],
      ['bin/sh', 'symlink', 0, 'busybox', undefined],
      [long, 'file', 1500, '', 1500],
      ['last', 'file', 3, '', 3],
    ],
  );
  // Skipping bodies (not reading them) lands on the same headers.
  assert.deepEqual((await entries(archive, false, 1000)).map((e) => e.path), all.map((e) => e.path));
  // Compressed bytes handed to the reader by mistake are refused, not read as an empty archive.
  await assert.rejects(entries(gzipSync(archive), true, 1 << 20), TarError);
});

test('tar reader: GNU long names and long link names (L/K), PAX path/linkpath/size, base-256 sizes', async () => {
  const longName = `usr/lib/python3/dist-packages/${'very-long-package-name-'.repeat(8)}-1.0.dist-info/METADATA`;
  const longLink = `../${'t'.repeat(150)}`;
  const gnuBody = Buffer.from('Name: x\n');
  const paxPath = `app/${'p'.repeat(200)}/node_modules/lodash/package.json`;
  const pax = Buffer.from(paxRecord('path', paxPath) + paxRecord('mtime', '1700000000.5'));
  const paxSized = Buffer.from(paxRecord('size', '5'));
  const archive = Buffer.concat([
    header({ name: '././@LongLink', typeflag: 'L', size: longName.length + 1, magic: 'ustar  ' }),
    pad(Buffer.from(longName + '\0')),
    header({ name: longName.slice(0, 99), typeflag: '0', size: gnuBody.length, magic: 'ustar  ', prefix: 'ignored-in-gnu-format' }),
    pad(gnuBody),
    header({ name: '././@LongLink', typeflag: 'K', size: longLink.length, magic: 'ustar  ' }),
    pad(Buffer.from(longLink)),
    header({ name: 'link', typeflag: '2', linkname: 'short', magic: 'ustar  ' }),
    header({ name: 'PaxHeaders/x', typeflag: 'x', size: pax.length }),
    pad(pax),
    header({ name: 'truncated-name', typeflag: '0', size: 2 }),
    pad(Buffer.from('{}')),
    header({ name: 'PaxHeaders/y', typeflag: 'x', size: paxSized.length }),
    pad(paxSized),
    header({ name: 'sized-by-pax', typeflag: '0', size: 0 }),
    pad(Buffer.from('hello')),
    header({ name: 'big', typeflag: '0', size: 3, base256Size: true }),
    pad(Buffer.from('abc')),
    END,
  ]);
  assert.deepEqual(
    (await entries(archive)).map((e) => [e.path, e.type, e.linkname, e.body]),
    [
      [longName, 'file', '', 'Name: x\n'],
      ['link', 'symlink', longLink, undefined],
      [paxPath, 'file', '', '{}'],
      ['sized-by-pax', 'file', '', 'hello'],
      ['big', 'file', '', 'abc'],
    ],
  );
});

test('tar reader: corrupt headers, truncated archives and oversized reads fail with TarError', async () => {
  const good = tar([{ type: 'file', path: 'a', data: 'x'.repeat(600) }]);
  const corrupt = Buffer.from(good);
  corrupt[10] = 0x41; // changes the name without fixing the checksum
  await assert.rejects(entries(corrupt), (e: unknown) => e instanceof TarError && /checksum/.test(e.message));
  await assert.rejects(entries(good.subarray(0, 700)), (e: unknown) => e instanceof TarError && /truncated/.test(e.message));
  await assert.rejects(async () => {
    for await (const e of readTar(chunks(good))) await e.read(100);
  }, /more than the 100/);
  // An archive without the end-of-archive blocks still ends cleanly at the end of input.
  assert.equal((await entries(good.subarray(0, 512 + 1024))).length, 1);
});

test('tar paths are normalised and cannot climb out of the root', () => {
  assert.equal(normalizeTarPath('./etc/os-release'), 'etc/os-release');
  assert.equal(normalizeTarPath('/var//lib/./dpkg/'), 'var/lib/dpkg');
  assert.equal(normalizeTarPath('../../etc/passwd'), 'etc/passwd');
  assert.equal(normalizeTarPath('./'), '');
});
