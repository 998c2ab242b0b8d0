// Scan-rate benchmark: a synthetic image (BENCH_SCAN_MIB of tar in BENCH_SCAN_LAYERS gzip layers,
// half random bytes and half text, plus a dpkg status and node_modules) pushed into an in-process
// registry on a temp data dir, then scanned cold. The last line of output is one JSON object.
//   npm run bench:scan            (256 MiB in 4 layers)
//   BENCH_SCAN_MIB=64 npm run bench:scan
//   BENCH_SCAN_SOURCE_DIR=/usr/lib npm run bench:scan   (layers from real files under that directory instead)
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readdirSync, readFileSync, lstatSync } from 'node:fs';
import { Readable } from 'node:stream';
import { openStores } from '../../src/server/registry-process.js';
import { measureScanThroughput } from '../../src/scan/throughput.js';
import type { RegistryService } from '../../src/registry/service.js';
import type { Digest } from '../../src/oci/digest.js';
import { makeImage, makeLayer, type Blob, type TarEntry } from '../../test/support/image.js';

const totalMiB = Number(process.env['BENCH_SCAN_MIB'] ?? 256);
const layerCount = Math.max(1, Number(process.env['BENCH_SCAN_LAYERS'] ?? 4));
const FILE = 1 << 20;

const sourceDir = process.env['BENCH_SCAN_SOURCE_DIR'];

/** Regular files under `dir`, depth first, until `budget` bytes (bounded walk). */
function* realFiles(dir: string, budget: { left: number; visited: number }): Generator<{ path: string; data: Buffer }> {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    if (budget.left <= 0 || ++budget.visited > 200_000) return;
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) yield* realFiles(p, budget);
    else if (st.isFile() && st.size > 0 && st.size <= budget.left) {
      budget.left -= st.size;
      yield { path: p.slice(1), data: readFileSync(p) };
    }
  }
}

const realSource = sourceDir ? realFiles(sourceDir, { left: totalMiB * FILE, visited: 0 }) : undefined;

function layerEntries(index: number, mib: number): TarEntry[] {
  if (realSource) {
    const entries: TarEntry[] = [];
    let size = 0;
    // next() by hand: breaking out of a for-of would close the shared generator for later layers.
    for (let r = realSource.next(); !r.done; r = realSource.next()) {
      entries.push({ type: 'file', path: r.value.path, data: r.value.data });
      size += r.value.data.length;
      if (size >= mib * FILE) break;
    }
    return entries;
  }
  const text = Buffer.from('export function handler(event) { return { status: 200, body: JSON.stringify(event) }; }\n'.repeat(Math.ceil(FILE / 90))).subarray(0, FILE);
  const entries: TarEntry[] = [];
  for (let i = 0; i < mib; i++) entries.push({ type: 'file', path: `data/l${index}/f${i}.bin`, data: i % 2 === 0 ? randomBytes(FILE) : text });
  if (index === 0) entries.push({ type: 'file', path: 'var/lib/dpkg/status', data: 'Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n' });
  for (let i = 0; i < 200; i++) entries.push({ type: 'file', path: `app${index}/node_modules/pkg${i}/package.json`, data: JSON.stringify({ name: `pkg${i}`, version: '1.0.0' }) });
  return entries;
}

async function putBlob(service: RegistryService, repo: string, b: Blob): Promise<void> {
  const id = await service.startUpload(repo);
  await service.finishUpload(repo, id, b.digest as Digest, { body: Readable.from([b.data]), opts: {} });
}

const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-scan-'));
const service = await openStores({ data: dir, maxManifestSize: 4 << 20, maxBlobSize: 64 * 1024 ** 3, manifestCacheSize: 1 << 20, manifestCacheTtl: 1000, gcGrace: 3_600_000 });
try {
  process.stderr.write(`building ${totalMiB} MiB in ${layerCount} layers...\n`);
  const layers = Array.from({ length: layerCount }, (_, i) => makeLayer(layerEntries(i, Math.max(1, Math.round(totalMiB / layerCount)))));
  const image = makeImage(layers);
  for (const b of [...layers, image.config]) await putBlob(service, 'bench/scan', b);
  await service.putManifest('bench/scan', 'v1', image.manifest.data, image.manifest.mediaType, []);
  const { rate, report } = await measureScanThroughput(service, 'bench/scan', image.manifest.digest as Digest);
  process.stderr.write(`scanned ${rate.tarMiB} MiB of tar (${rate.compressedMiB} MiB compressed) in ${rate.seconds} s: ${rate.tarMiBps} MiB/s tar, ${rate.compressedMiBps} MiB/s compressed; ${report.packages.length} packages\n`);
  console.log(JSON.stringify({ bench: 'scan', layers: layerCount, packages: report.packages.length, ...rate }));
} finally {
  await service.meta.close();
  await rm(dir, { recursive: true, force: true });
}
