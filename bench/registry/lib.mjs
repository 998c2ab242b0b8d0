#!/usr/bin/env node
// Helpers for bench/registry/run.sh (no dependencies beyond Node 20's standard library).
//
//   lib.mjs port                         print a free TCP port on 127.0.0.1
//   lib.mjs stale ROOT                   exit 0 when dist/ is missing or older than src/ (a build is needed), 1 otherwise
//   lib.mjs layout DIR BYTES TAG         write an OCI image layout: one tar+gzip(level 1) layer holding one random file
//                                        of BYTES bytes, a config, a manifest and index.json (ref.name TAG); prints the
//                                        layer's compressed size in bytes
//   lib.mjs wrk FILE                     parse `wrk --latency` output into JSON {rps, p50_ms, p99_ms, requests, non2xx, socket_errors}
//   lib.mjs report RESULTS               print the comparison table and, as the last line, one JSON object
import { createServer } from 'node:net';
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream, readFileSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { once } from 'node:events';
import { stale, tarHeader } from '../common.mjs';

const [cmd, ...args] = process.argv.slice(2);

function fail(msg) {
  process.stderr.write(`lib.mjs: ${msg}\n`);
  process.exit(2);
}

async function freePort() {
  const srv = createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  console.log(port);
}

async function layout(dir, bytes, tag) {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const tmp = join(dir, 'layer.tmp');
  const out = createWriteStream(tmp);
  const gz = createGzip({ level: 1 });
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let blobSize = 0;
  gz.on('data', (c) => {
    blobHash.update(c);
    blobSize += c.length;
    if (!out.write(c)) {
      gz.pause();
      out.once('drain', () => gz.resume());
    }
  });
  const gzEnded = once(gz, 'end');
  const write = async (buf) => {
    diffHash.update(buf);
    if (!gz.write(buf)) await once(gz, 'drain');
  };
  await write(tarHeader('data.bin', bytes));
  const CHUNK = 1 << 20;
  for (let left = bytes; left > 0; ) {
    const n = Math.min(CHUNK, left);
    await write(randomFillSync(Buffer.allocUnsafe(n)));
    left -= n;
  }
  const pad = (512 - (bytes % 512)) % 512;
  await write(Buffer.alloc(pad + 1024, 0)); // file padding + two zero blocks (end of archive)
  gz.end();
  await gzEnded;
  out.end();
  await once(out, 'finish');
  const layerDigest = blobHash.digest('hex');
  const diffId = diffHash.digest('hex');
  renameSync(tmp, join(blobs, layerDigest));

  const putJson = (obj) => {
    const body = Buffer.from(JSON.stringify(obj));
    const hex = createHash('sha256').update(body).digest('hex');
    writeFileSync(join(blobs, hex), body);
    return { digest: `sha256:${hex}`, size: body.length };
  };
  const config = putJson({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Cmd: ['/data.bin'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'shoal bench' }],
  });
  const manifest = putJson({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${layerDigest}`, size: blobSize }],
  });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  console.log(blobSize);
}

/** "1.23ms" / "456.00us" / "1.20s" / "2.00m" -> milliseconds. */
function toMs(v) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000, h: n * 3_600_000 }[m[2]];
}

function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, 'm').exec(text.split('Latency Distribution')[1] ?? '');
    return m ? toMs(m[1]) : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socket_errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const rpsMatch = /Requests\/sec:\s+([\d.]+)/.exec(text);
  return {
    rps: rpsMatch ? Number(rpsMatch[1]) : NaN,
    p50_ms: pct(50),
    p99_ms: pct(99),
    requests: num(/(\d+) requests in/),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/),
    socket_errors,
    socket_errors_detail: sock ? `connect ${sock[1]}, read ${sock[2]}, write ${sock[3]}, timeout ${sock[4]}` : 'none',
  };
}

function report(file) {
  const r = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) r[line.slice(0, i)] = line.slice(i + 1);
  }
  const n = (k) => (r[k] === undefined || r[k] === '' ? NaN : Number(r[k]));
  const round = (x, d = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null);
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);

  const f = {
    shoal_push_mib_s: n('shoal_push_mib_s'),
    dist_push_mib_s: n('dist_push_mib_s'),
    shoal_pull_mib_s: n('shoal_pull_mib_s'),
    dist_pull_mib_s: n('dist_pull_mib_s'),
  };
  for (const who of ['shoal', 'dist']) {
    for (const c of [50, 500]) {
      f[`${who}_manifest_rps_c${c}`] = n(`${who}_manifest_rps_c${c}`);
      f[`${who}_p50_ms_c${c}`] = n(`${who}_p50_ms_c${c}`);
      f[`${who}_p99_ms_c${c}`] = n(`${who}_p99_ms_c${c}`);
      f[`${who}_manifest_errors_c${c}`] = n(`${who}_manifest_errors_c${c}`);
    }
  }
  f.shoal_rss_mb = n('shoal_rss_mb');
  f.dist_rss_mb = n('dist_rss_mb');

  const pushRatio = ratio(f.shoal_push_mib_s, f.dist_push_mib_s);
  const pullRatio = ratio(f.shoal_pull_mib_s, f.dist_pull_mib_s);
  const rpsRatio = ratio(f.shoal_manifest_rps_c50, f.dist_manifest_rps_c50);
  const rpsRatio500 = ratio(f.shoal_manifest_rps_c500, f.dist_manifest_rps_c500);

  const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const verdict = (ok) => (ok === null ? '' : ok ? 'MET' : 'MISSED');
  const meets = (x, pred) => (Number.isFinite(x) ? pred(x) : null);
  const rows = [
    ['metric', 'Shoal', 'Distribution', 'Shoal/Dist', 'target', ''],
    ['blob push, skopeo (MiB/s, median)', fmt(f.shoal_push_mib_s), fmt(f.dist_push_mib_s), fmt(pushRatio, 2) + 'x', '>= 1.0x', verdict(meets(pushRatio, (x) => x >= 1))],
    ['blob pull, curl (MiB/s, median)', fmt(f.shoal_pull_mib_s), fmt(f.dist_pull_mib_s), fmt(pullRatio, 2) + 'x', '>= 1.0x', verdict(meets(pullRatio, (x) => x >= 1))],
    ['manifest GET c50 (req/s)', fmt(f.shoal_manifest_rps_c50, 0), fmt(f.dist_manifest_rps_c50, 0), fmt(rpsRatio, 2) + 'x', '>= 10x', verdict(meets(rpsRatio, (x) => x >= 10))],
    ['manifest GET c50 p50 (ms)', fmt(f.shoal_p50_ms_c50, 2), fmt(f.dist_p50_ms_c50, 2), '', '', ''],
    ['manifest GET c50 p99 (ms)', fmt(f.shoal_p99_ms_c50, 2), fmt(f.dist_p99_ms_c50, 2), '', '< 5 ms', verdict(meets(f.shoal_p99_ms_c50, (x) => x < 5))],
    ['manifest GET c50 errors/non-2xx', fmt(f.shoal_manifest_errors_c50, 0), fmt(f.dist_manifest_errors_c50, 0), '', '0', verdict(meets(f.shoal_manifest_errors_c50, (x) => x === 0))],
    ['manifest GET c500 (req/s)', fmt(f.shoal_manifest_rps_c500, 0), fmt(f.dist_manifest_rps_c500, 0), fmt(rpsRatio500, 2) + 'x', '', ''],
    ['manifest GET c500 p50 (ms)', fmt(f.shoal_p50_ms_c500, 2), fmt(f.dist_p50_ms_c500, 2), '', '', ''],
    ['manifest GET c500 p99 (ms)', fmt(f.shoal_p99_ms_c500, 2), fmt(f.dist_p99_ms_c500, 2), '', '', ''],
    ['manifest GET c500 errors/non-2xx', fmt(f.shoal_manifest_errors_c500, 0), fmt(f.dist_manifest_errors_c500, 0), '', '0', verdict(meets(f.shoal_manifest_errors_c500, (x) => x === 0))],
    ['peak RSS (MiB, 200 ms samples)', fmt(f.shoal_rss_mb), fmt(f.dist_rss_mb), fmt(ratio(f.shoal_rss_mb, f.dist_rss_mb), 2) + 'x', '< 150 MB', verdict(meets(f.shoal_rss_mb, (x) => x < 150))],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  console.log('');
  console.log(`Shoal vs CNCF Distribution ${r.dist_version ?? ''} on ${r.host ?? 'this machine'} (${r.mode ?? ''})`);
  console.log(r.params ?? '');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows.slice(1)) console.log(line(row));
  console.log('');
  for (const [k, v] of Object.entries(r)) if (k.startsWith('detail.')) console.log(`  ${k.slice(7)}: ${v}`);
  console.log('');

  const json = {
    blob_pull_ratio: round(pullRatio, 3),
    blob_push_ratio: round(pushRatio, 3),
    manifest_rps_ratio: round(rpsRatio, 3),
    manifest_rps_ratio_c500: round(rpsRatio500, 3),
    manifest_p99_ms: round(f.shoal_p99_ms_c50, 3),
    rss_mb: round(f.shoal_rss_mb, 1),
  };
  for (const [k, v] of Object.entries(f)) {
    if (k === 'shoal_rss_mb') continue;
    json[k] = round(v, k.includes('_ms_') ? 3 : 1);
  }
  json.push_layer_mib = round(n('push_layer_mib'), 1);
  json.pull_blob_mib = round(n('pull_blob_mib'), 1);
  json.wrk_duration_s = round(n('wrk_duration_s'), 0);
  json.wrk_runs = round(n("wrk_runs"), 0);
  json.runs = round(n('runs'), 0);
  json.quick = r.mode === 'quick';
  json.pull_digest_verified = r.pull_digest_verified === 'yes';
  console.log(JSON.stringify(json));
}

switch (cmd) {
  case 'port':
    await freePort();
    break;
  case 'stale':
    process.exit(stale(args[0] ?? '.') ? 0 : 1);
    break;
  case 'layout': {
    const [dir, bytes, tag] = args;
    if (!dir || !bytes || !tag) fail('usage: layout DIR BYTES TAG');
    await layout(dir, Number(bytes), tag);
    break;
  }
  case 'wrk':
    console.log(JSON.stringify(parseWrk(readFileSync(args[0], 'utf8'))));
    break;
  case 'report':
    report(args[0]);
    break;
  default:
    fail(`unknown command ${cmd ?? ''}`);
}
