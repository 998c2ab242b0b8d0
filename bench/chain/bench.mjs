// bench/chain: see run.sh. Plain ESM over dist/ so it measures the built binary.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { tarHeader } from '../common.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'cli', 'main.js');
const QUICK = process.env.BENCH_QUICK === '1';
const LAYERS = int('BENCH_LAYERS', QUICK ? 4 : 8, 1, 64);
const LAYER_MIB = int('BENCH_LAYER_MIB', QUICK ? 8 : 128, 1, 4096);
const TIMEOUT_S = int('BENCH_TIMEOUT_S', QUICK ? 180 : 900, 10, 3600);
const MiB = 1024 * 1024;
const procs = [];
const dirs = [];
const log = (m) => process.stderr.write(`[bench:chain ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

function int(name, def, min, max) {
  const v = process.env[name] === undefined ? def : Number(process.env[name]);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}]`);
  return v;
}

async function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawns a process, keeps its output, resolves with the address its "listening" log line names. */
function start(name, cmd, args, { waitFor } = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  p.name = name;
  p.out = out;
  procs.push(p);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${out.slice(-20).join('\n')}`)), 20_000);
    const onLine = (l) => {
      out.push(l);
      if (waitFor && waitFor(l)) {
        clearTimeout(timer);
        resolve(p);
      }
    };
    createInterface({ input: p.stdout }).on('line', onLine);
    createInterface({ input: p.stderr }).on('line', onLine);
    p.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}):\n${out.slice(-20).join('\n')}`));
    });
    if (!waitFor) resolve(p);
  });
}
const listening = (l) => l.includes('"msg":"listening"');
const addressOf = (p) => JSON.parse(p.out.find(listening)).address;

function runCli(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (code) => {
      clearTimeout(t);
      code === 0 ? resolve(out) : reject(new Error(`shoal ${args.join(' ')}: ${code}\n${err}`));
    });
  });
}

async function http(method, url, { headers = {}, body } = {}) {
  const res = await fetch(url, { method, headers, body, duplex: 'half' });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf };
}

const DPKG = 'Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\n\n';
const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

/** Uploads one tar layer (a random file of `size` bytes, plus dpkg metadata in the first) in 16 MiB PATCHes. */
async function pushLayer(base, repo, index, size) {
  const seed = randomBytes(16 * MiB);
  const hash = createHash('sha256');
  const parts = [];
  const file = (name, data) => {
    const pad = (512 - (data.length % 512)) % 512;
    parts.push(tarHeader(name, data.length), data, Buffer.alloc(pad));
  };
  if (index === 0) {
    file('etc/os-release', Buffer.from(OS_RELEASE));
    file('var/lib/dpkg/status', Buffer.from(DPKG));
  }
  parts.push(tarHeader(`data/blob-${index}.bin`, size));
  const start = await http('POST', `${base}/v2/${repo}/blobs/uploads/`);
  let location = start.headers.get('location');
  let offset = 0;
  const send = async (buf) => {
    hash.update(buf);
    const r = await http('PATCH', `${base}${location}`, { headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + buf.length - 1}` }, body: buf });
    if (r.status !== 202) throw new Error(`PATCH ${r.status} ${r.body}`);
    location = r.headers.get('location');
    offset += buf.length;
  };
  await send(Buffer.concat(parts));
  for (let done = 0, i = 0; done < size; i++) {
    const chunk = Buffer.from(seed.subarray(0, Math.min(seed.length, size - done)));
    chunk.writeUInt32BE(i, 0);
    chunk.writeUInt32BE(index, 4);
    await send(chunk);
    done += chunk.length;
  }
  await send(Buffer.alloc(((512 - (size % 512)) % 512) + 1024));
  const digest = `sha256:${hash.digest('hex')}`;
  const fin = await http('PUT', `${base}${location}${location.includes('?') ? '&' : '?'}digest=${digest}`);
  if (fin.status !== 201) throw new Error(`PUT ${fin.status} ${fin.body}`);
  return { digest, size: offset, diffId: digest };
}

async function main() {
  const deadline = setTimeout(() => {
    log(`timed out after ${TIMEOUT_S} s`);
    cleanup().then(() => process.exit(1));
  }, TIMEOUT_S * 1000);
  const work = await mkdtemp(join(tmpdir(), 'shoal-bench-chain-'));
  dirs.push(work);
  log(`mode ${QUICK ? 'quick' : 'full'}: ${LAYERS} layers × ${LAYER_MIB} MiB`);

  const data = join(work, 'registry');
  await runCli(['vulndb', 'import', join(ROOT, 'test', 'fixtures', 'osv'), '--data', data]).catch((e) => log(`vulndb import skipped: ${e.message.split('\n')[0]}`));
  const registry = await start('serve', process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data', data, '--log-level', 'info', '--access-log', 'off'], { waitFor: listening });
  const regUrl = `http://${addressOf(registry)}`;

  const distPort = await freePort();
  const distDir = join(work, 'distribution');
  await mkdir(distDir, { recursive: true });
  await writeFile(join(distDir, 'config.yml'), `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${distDir}/data\nhttp:\n  addr: 127.0.0.1:${distPort}\n`);
  await start('docker-registry', 'docker-registry', ['serve', join(distDir, 'config.yml')]);
  const distUrl = `http://127.0.0.1:${distPort}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await http('GET', `${distUrl}/v2/`)).status === 200) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const scheduler = await start('scheduler', process.execPath, [BIN, 'scheduler', '--listen', '127.0.0.2:0', '--registry', regUrl, '--log-level', 'info'], { waitFor: listening });
  const schedUrl = `http://${addressOf(scheduler)}`;
  const seedDir = join(work, 'seed');
  await start('seed', process.execPath, [BIN, 'seed', '--listen', '127.0.0.3:0', '--data', seedDir, '--scheduler', schedUrl, '--registry', regUrl, '--log-level', 'info'], { waitFor: listening });

  await runCli(['chain', '--registry', regUrl, 'add', 'bench', '--repo', 'bench/**', '--replicate-to', distUrl, '--preheat', schedUrl, '--timeout', String(TIMEOUT_S * 1000)]);
  await runCli(['chain', '--registry', regUrl, 'gate', 'set', 'bench', '--severity', 'CRITICAL']);

  const repo = 'bench/app';
  const pushStart = Date.now();
  const layers = [];
  for (let i = 0; i < LAYERS; i++) {
    layers.push(await pushLayer(regUrl, repo, i, LAYER_MIB * MiB));
    log(`layer ${i + 1}/${LAYERS} pushed`);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, config: {} }));
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const c = await http('POST', `${regUrl}/v2/${repo}/blobs/uploads/?digest=${configDigest}`, { headers: { 'content-type': 'application/octet-stream' }, body: config });
  if (c.status !== 201) throw new Error(`config upload ${c.status}`);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
  }));
  const put = await http('PUT', `${regUrl}/v2/${repo}/manifests/v1`, { headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  if (put.status !== 201) throw new Error(`manifest PUT ${put.status} ${put.body}`);
  const pushed = Date.now();
  const imageBytes = layers.reduce((a, l) => a + l.size, 0) + config.length;
  log(`image pushed: ${(imageBytes / MiB).toFixed(0)} MiB in ${((pushed - pushStart) / 1000).toFixed(1)} s; following the chain run`);

  let run;
  for (;;) {
    const r = JSON.parse((await http('GET', `${regUrl}/api/v1/chains/_runs?repo=${repo}`)).body.toString()).runs[0];
    if (r && ['succeeded', 'failed', 'blocked'].includes(r.status)) {
      run = r;
      break;
    }
    if (r) {
      const s = r.stages.find((x) => x.status === 'running');
      if (s?.progress) log(`  ${s.name}: ${(s.progress.done / MiB).toFixed(0)}/${(s.progress.total / MiB).toFixed(0)} MiB`);
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
  if (run.status !== 'succeeded') throw new Error(`run ${run.status}: ${run.reason}`);
  const stage = (n) => run.stages.find((s) => s.name === n);
  const secs = (s) => (s.finishedAt - s.startedAt) / 1000;
  const preheatedAt = stage('preheat').finishedAt;
  // Digest check on the second registry.
  const m = await http('GET', `${distUrl}/v2/${repo}/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const sameDigest = createHash('sha256').update(m.body).digest('hex') === createHash('sha256').update(manifest).digest('hex');
  if (!sameDigest) throw new Error('the second registry holds a different manifest');
  const scanStats = stage('scan').output?.stats;
  const scanBytes = scanStats ? scanStats.tarBytes : imageBytes;
  const scanSeconds = scanStats ? scanStats.durationMs / 1000 : secs(stage('scan'));
  const result = {
    mode: QUICK ? 'quick' : 'full',
    image_MiB: Math.round(imageBytes / MiB),
    layers: LAYERS,
    push_s: round((pushed - pushStart) / 1000),
    push_to_replicated_and_preheated_s: round((preheatedAt - pushed) / 1000),
    queue_s: round((run.startedAt - pushed) / 1000),
    scan_s: round(secs(stage('scan'))),
    gate_s: round(secs(stage('gate'))),
    replicate_s: round(secs(stage('replicate'))),
    preheat_s: round(secs(stage('preheat'))),
    notify_s: round(secs(stage('notify'))),
    scan_rate_MiBps: round(scanBytes / MiB / scanSeconds),
    replicate_rate_MiBps: round(imageBytes / MiB / secs(stage('replicate'))),
    same_digest_on_target: sameDigest,
  };
  console.log(`push ${result.image_MiB} MiB (${LAYERS} layers): ${result.push_s} s`);
  console.log(`push → replicated + preheated: ${result.push_to_replicated_and_preheated_s} s`);
  for (const n of ['scan', 'gate', 'replicate', 'preheat', 'notify']) console.log(`  ${n.padEnd(9)} ${result[`${n}_s`]} s`);
  console.log(`scan rate ${result.scan_rate_MiBps} MiB/s of layer data; replication ${result.replicate_rate_MiBps} MiB/s`);
  clearTimeout(deadline);
  await cleanup();
  console.log(JSON.stringify(result));
}

const round = (x) => Math.round(x * 100) / 100;

async function cleanup() {
  if (process.env.BENCH_KEEP_LOGS) {
    await mkdir(process.env.BENCH_KEEP_LOGS, { recursive: true });
    for (const p of procs) await writeFile(join(process.env.BENCH_KEEP_LOGS, `${p.name}.log`), p.out.join('\n'));
  }
  await Promise.all(
    procs.map(
      (p) =>
        new Promise((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.removeAllListeners('exit');
          p.once('exit', resolve);
          p.kill('SIGTERM');
          setTimeout(() => p.kill('SIGKILL'), 5_000).unref();
        }),
    ),
  );
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));
main().catch(async (err) => {
  log(`failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
});

