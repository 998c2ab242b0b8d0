#!/usr/bin/env node
// Helpers for bench/p2p/run.sh (Node 20 standard library only; no network access of their own).
//
//   lib.mjs sample OUT STOP PIDS MAX_S [ROOT_PID]
//                                        every 200 ms: VmRSS of every process listed in PIDS ("name pid" per line);
//                                        every 1 s: machine CPU idle from /proc/stat and (in the hub namespace) the
//                                        veths' byte counters; at start and end: CPU seconds (utime+stime) of every
//                                        listed process, and of every process NOT descended from ROOT_PID (other
//                                        work on the machine). Stops when the file STOP exists or after MAX_S
//                                        seconds, then writes OUT (JSON).
//   lib.mjs prom FILE NAME [LABEL=VALUE] sum of the samples of metric NAME in a Prometheus text file (0 if absent)
//   lib.mjs stale ROOT                   exit 0 when dist/ is missing or older than src/ (a build is needed), 1 otherwise
//   lib.mjs logsummary FILE...          count warn/error log lines (pino level >= 40) by message
//   lib.mjs series SAMPLER_JSON         per-second wire rates and CPU idle of a phase, for the progress log
//   lib.mjs report WORK                  print the result table and, as the last line, one JSON object
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stale } from '../common.mjs';

const [cmd, ...args] = process.argv.slice(2);
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64

function fail(msg) {
  process.stderr.write(`lib.mjs: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------- /proc
function readRssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function readCpuTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm) ": state=0 ... utime=11 stime=12
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function readStat() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0); // idle + iowait
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is inside user)
  return { idle, total, user: v[0] + v[1], system: v[2], iowait: v[4] ?? 0, irq: (v[5] ?? 0) + (v[6] ?? 0), steal: v[7] ?? 0 };
}

/** Byte counters of the hub namespace's veths (the sampler runs there): tx = towards the node, rx = from it. */
function readNet() {
  const dir = '/sys/class/net';
  if (!existsSync(`${dir}/br0`)) return null;
  const net = {};
  for (const dev of readdirSync(dir)) {
    if (dev === 'br0' || dev === 'lo') continue;
    try {
      net[dev] = { rx: Number(readFileSync(`${dir}/${dev}/statistics/rx_bytes`, 'utf8')), tx: Number(readFileSync(`${dir}/${dev}/statistics/tx_bytes`, 'utf8')) };
    } catch {
      /* gone */
    }
  }
  return net;
}

/** Every process: pid -> { ppid, ticks, cmd } (kernel threads have an empty cmd). */
function readAllProcs() {
  const all = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      all.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), cmd });
    } catch {
      /* exited */
    }
  }
  return all;
}

/**
 * CPU used during the phase by processes that are not ours (not descendants of rootPid, not kernel
 * threads): other work on the machine skews every CPU figure, so it is reported.
 */
function foreignCpu(before, after, rootPid) {
  const ours = (pid) => {
    for (let p = pid, i = 0; p > 1 && i < 64; i++) {
      if (p === rootPid) return true;
      p = after.get(p)?.ppid ?? before.get(p)?.ppid ?? 0;
    }
    return false;
  };
  // The processes that started this run (npm, the shell) are not "other work" either.
  const ancestors = new Set();
  for (let p = rootPid, i = 0; p > 1 && i < 64; i++) (ancestors.add(p), (p = after.get(p)?.ppid ?? 0));
  const rows = [];
  for (const [pid, a] of after) {
    if (!a.cmd || a.ppid === 2 || ancestors.has(pid) || ours(pid)) continue;
    const b = before.get(pid);
    const ticks = a.ticks - (b && b.cmd === a.cmd ? b.ticks : 0);
    if (ticks > 0) rows.push({ pid, cmd: a.cmd.slice(0, 100), cpuS: ticks / CLK_TCK });
  }
  rows.sort((x, y) => y.cpuS - x.cpuS);
  return { cpuS: Math.round(rows.reduce((t, r) => t + r.cpuS, 0) * 100) / 100, top: rows.slice(0, 3) };
}

async function sample(out, stop, pidsFile, maxS, rootPid) {
  const procsBefore = rootPid ? readAllProcs() : null;
  const procs = readFileSync(pidsFile, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 2 && /^\d+$/.test(p[1]))
    .map(([name, pid]) => ({ name, pid: Number(pid), maxKb: 0, sumKb: 0, n: 0, cpu0: readCpuTicks(pid), cpuLast: null }));
  for (const p of procs) p.cpuLast = p.cpu0;
  const started = Date.now();
  const stat0 = readStat();
  let statPrev = stat0;
  let lastStatAt = started;
  const idleSeries = [];
  const net0 = readNet();
  let netPrev = net0;
  // Per second, MB/s: agents' downloads (sum), agents' uploads (sum), the seed's upload, the registry's egress.
  const netSeries = [];
  const deadline = started + maxS * 1000;
  for (let i = 0; ; i++) {
    for (const p of procs) {
      const kb = readRssKb(p.pid);
      if (kb !== null) {
        p.maxKb = Math.max(p.maxKb, kb);
        p.sumKb += kb;
        p.n++;
        const t = readCpuTicks(p.pid);
        if (t !== null) p.cpuLast = t;
      }
    }
    const now = Date.now();
    if (now - lastStatAt >= 1000) {
      const s = readStat();
      const dt = s.total - statPrev.total;
      if (dt > 0) idleSeries.push(Math.round((1000 * (s.idle - statPrev.idle)) / dt) / 10);
      statPrev = s;
      const net = readNet();
      if (net && netPrev) {
        const secs = (now - lastStatAt) / 1000;
        const d = (dev, dir) => (net[dev] && netPrev[dev] ? net[dev][dir] - netPrev[dev][dir] : 0);
        let down = 0;
        let up = 0;
        for (const dev of Object.keys(net)) if (/^va\d+$/.test(dev)) (down += d(dev, 'tx')), (up += d(dev, 'rx'));
        const mb = (b) => Math.round(b / secs / 1e5) / 10;
        netSeries.push({ down: mb(down), up: mb(up), seed: mb(d('vseed', 'rx')), reg: mb(d('vreg', 'rx')) });
      }
      netPrev = net;
      lastStatAt = now;
    }
    if (existsSync(stop) || now >= deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const stat1 = readStat();
  const foreign = procsBefore ? foreignCpu(procsBefore, readAllProcs(), rootPid) : null;
  const net1 = readNet();
  let netTotals = null;
  if (net0 && net1) {
    const d = (dev, dir) => (net1[dev] && net0[dev] ? net1[dev][dir] - net0[dev][dir] : 0);
    netTotals = { agentsDown: 0, agentsUp: 0, seedUp: d('vseed', 'rx'), registryOut: d('vreg', 'rx'), perAgentDown: {} };
    for (const dev of Object.keys(net1)) {
      if (!/^va\d+$/.test(dev)) continue;
      netTotals.agentsDown += d(dev, 'tx');
      netTotals.agentsUp += d(dev, 'rx');
      netTotals.perAgentDown[dev.slice(2)] = d(dev, 'tx');
    }
  }
  const total = stat1.total - stat0.total;
  const result = {
    durationS: (Date.now() - started) / 1000,
    idlePct: total > 0 ? Math.round((1000 * (stat1.idle - stat0.idle)) / total) / 10 : null,
    idleMinPct: idleSeries.length ? Math.min(...idleSeries) : null,
    idleSeries,
    netSeries,
    netTotals,
    foreign,
    // Where the machine's CPU went over the phase (% of all cores): user, system, irq+softirq (network), iowait, steal.
    split: Object.fromEntries(['user', 'system', 'irq', 'iowait', 'steal'].map((k) => [k, total > 0 ? Math.round((1000 * (stat1[k] - stat0[k])) / total) / 10 : null])),
    procs: procs.map((p) => ({
      name: p.name,
      pid: p.pid,
      maxRssMb: round(p.maxKb / 1024, 1),
      meanRssMb: p.n ? round(p.sumKb / p.n / 1024, 1) : 0,
      cpuS: p.cpu0 !== null && p.cpuLast !== null ? (p.cpuLast - p.cpu0) / CLK_TCK : null,
    })),
  };
  writeFileSync(out, JSON.stringify(result));
}

// ---------------------------------------------------------------------------------------------- prometheus
function promSum(text, name, label) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (label) {
      const [k, v] = label.split('=');
      if (!rest.includes(`${k}="${v}"`)) continue;
    }
    const val = Number(line.trim().split(/\s+/).pop());
    if (Number.isFinite(val)) sum += val;
  }
  return sum;
}

function promFile(file, name, label) {
  if (!existsSync(file)) return null;
  return promSum(readFileSync(file, 'utf8'), name, label);
}

// ---------------------------------------------------------------------------------------------- stale
// ---------------------------------------------------------------------------------------------- report
function round(x, d = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const k = 10 ** d;
  return Math.round(x * k) / k;
}

/** Nearest-rank percentile of a sorted array. */
function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function readJson(file, dflt = null) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return dflt;
  }
}

function readKv(file) {
  const kv = {};
  if (!existsSync(file)) return kv;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i)] = line.slice(i + 1);
  }
  return kv;
}

/** bash `times` output ("1m2.345s") in seconds. */
function bashTime(t) {
  const m = /^(\d+)m([\d.]+)s$/.exec(t ?? '');
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
}

/** One phase directory: meta.env, clients/<i> lines "start end rc sha code bytes cpu_user cpu_sys ttfb_s", sampler.json, metrics. */
function phase(dir, blobBytes, expectDigest) {
  if (!existsSync(dir)) return null;
  const meta = readKv(join(dir, 'meta.env'));
  const t0 = Number(meta.t0);
  const killed = new Set((meta.killed ?? '').split(' ').filter(Boolean).map(Number));
  const clientsDir = join(dir, 'clients');
  const times = [];
  /** Time to the first body byte from the common start, of the clients that completed. */
  const firstBytes = [];
  const failures = [];
  const seen = new Set();
  let clientCpuS = 0;
  for (const f of existsSync(clientsDir) ? readdirSync(clientsDir) : []) {
    if (!/^\d+$/.test(f)) continue;
    const i = Number(f);
    seen.add(i);
    if (killed.has(i)) continue;
    const [start, end, rc, sha, code, bytes, cu, cs, ttfb] = readFileSync(join(clientsDir, f), 'utf8').trim().split(/\s+/);
    clientCpuS += bashTime(cu) + bashTime(cs);
    const ok = rc === '0' && (code === '200' || code === '206') && Number(bytes) === blobBytes && (!sha || sha === 'skip' || `sha256:${sha}` === expectDigest);
    if (!ok) failures.push({ agent: i, rc, code, bytes: Number(bytes), sha: sha?.slice(0, 12) });
    else {
      times.push((Number(end) - t0) / 1000);
      if (ttfb !== undefined && Number.isFinite(Number(ttfb))) firstBytes.push((Number(start) - t0) / 1000 + Number(ttfb));
    }
  }
  firstBytes.sort((a, b) => a - b);
  const expected = Number(meta.clients ?? seen.size);
  // Clients that never wrote a result (timed out and were stopped) count as failures too.
  for (let i = 1; i <= expected; i++) if (!seen.has(i) && !killed.has(i)) failures.push({ agent: i, rc: 'no result' });
  times.sort((a, b) => a - b);
  const regBefore = promFile(join(dir, 'registry-before.prom'), 'shoal_blob_bytes_sent_total');
  const regAfter = promFile(join(dir, 'registry-after.prom'), 'shoal_blob_bytes_sent_total');
  const sampler = readJson(join(dir, 'sampler.json'), { procs: [] });
  const agents = sampler.procs.filter((p) => p.name.startsWith('agent'));
  const sched = sampler.procs.find((p) => p.name === 'scheduler');
  const seed = sampler.procs.find((p) => p.name === 'seed');
  const registry = sampler.procs.find((p) => p.name === 'registry');
  // Agent totals from /status and /metrics collected after the phase.
  const tot = { fromPeers: 0, fromSeed: 0, origin: 0, fallbacks: 0, corrupt: 0, failedDownloads: 0, uploaded: 0, statusRead: 0, pieceRequests: 0, busy: 0 };
  const statusDir = join(dir, 'status');
  for (const f of existsSync(statusDir) ? readdirSync(statusDir) : []) {
    if (f.endsWith('.json')) {
      const s = readJson(join(statusDir, f));
      if (!s?.totals) continue;
      tot.statusRead++;
      tot.fromPeers += s.totals.bytesFromPeers ?? 0;
      tot.fromSeed += s.totals.bytesFromSeed ?? 0;
      tot.fallbacks += s.totals.fallbacks ?? 0;
      tot.corrupt += s.totals.corruptPieces ?? 0;
      tot.failedDownloads += s.totals.failed ?? 0;
      // Piece requests the agent's peer server answered, and how many of them were "busy".
      tot.pieceRequests += s.served?.pieceRequests ?? 0;
      tot.busy += s.served?.busyRejections ?? 0;
    } else if (f.endsWith('.prom')) {
      const text = readFileSync(join(statusDir, f), 'utf8');
      tot.origin += promSum(text, 'shoal_agent_bytes_total', 'source=origin');
      tot.uploaded += promSum(text, 'shoal_agent_bytes_total', 'source=uploaded');
    }
  }
  const schedProm = join(dir, 'scheduler-after.prom');
  const schedBeforeProm = join(dir, 'scheduler-before.prom');
  const schedDelta = (name) => {
    const a = promFile(schedProm, name);
    const b = promFile(schedBeforeProm, name);
    return a === null ? null : a - (b ?? 0);
  };
  const wall = sampler.durationS ?? (times.length ? times[times.length - 1] : null);
  return {
    meta,
    clients: expected,
    killed: [...killed],
    completed: times.length,
    failures,
    p50: pct(times, 50),
    p99: pct(times, 99),
    max: times.length ? times[times.length - 1] : null,
    ttfbP50: pct(firstBytes, 50),
    ttfbMax: firstBytes.length ? firstBytes[firstBytes.length - 1] : null,
    min: times.length ? times[0] : null,
    registryBytes: regAfter !== null && regBefore !== null ? regAfter - regBefore : null,
    registryBlobGets: meta.registry_blob_gets !== undefined ? Number(meta.registry_blob_gets) : null,
    seedFetchS: meta.seed_fetch_ms ? Number(meta.seed_fetch_ms) / 1000 : null,
    schedCpuS: sched?.cpuS ?? null,
    schedShare: sched?.cpuS != null && wall ? sched.cpuS / wall : null,
    schedRssMb: sched?.maxRssMb ?? null,
    seedCpuS: seed?.cpuS ?? null,
    seedRssMb: seed?.maxRssMb ?? null,
    registryCpuS: registry?.cpuS ?? null,
    agentsCpuS: agents.reduce((a, p) => a + (p.cpuS ?? 0), 0),
    agentRssMax: agents.length ? Math.max(...agents.map((p) => p.maxRssMb)) : null,
    agentRssMean: agents.length ? agents.reduce((a, p) => a + p.maxRssMb, 0) / agents.length : null,
    idlePct: sampler.idlePct ?? null,
    split: sampler.split ?? null,
    foreign: sampler.foreign ?? null,
    net: sampler.netTotals ?? null,
    netSeries: sampler.netSeries ?? [],
    clientCpuS,
    idleMinPct: sampler.idleMinPct ?? null,
    wall,
    tot,
    sched: {
      announces: schedDelta('shoal_scheduler_announces_total'),
      parents: schedDelta('shoal_scheduler_parents_handed_out_total'),
      badReports: schedDelta('shoal_scheduler_bad_peer_reports_total'),
      b2s: schedDelta('shoal_scheduler_back_to_source_grants_total'),
      seedFetches: schedDelta('shoal_scheduler_seed_fetch_requests_total'),
    },
  };
}

function report(work) {
  const cfg = readKv(join(work, 'config.env'));
  const N = Number(cfg.agents);
  const F = Number(cfg.blob_bytes);
  const mbit = (x) => (Number(x) * 1e6) / 8; // tc's and shoal's "mbit" are 10^6 bit/s
  const uSeed = mbit(cfg.seed_mbit);
  const uAgent = mbit(cfg.cap_mbit);
  const dMin = mbit(cfg.cap_mbit);
  const terms = { seed: F / uSeed, dmin: F / dMin, swarm: (N * F) / (uSeed + N * uAgent) };
  const bound = Math.max(terms.seed, terms.dmin, terms.swarm);
  const regBps = mbit(cfg.registry_mbit);
  const directBound = Math.max((N * F) / regBps, F / dMin);

  const p2p = phase(join(work, 'phase-p2p'), F, cfg.digest_p2p);
  const churn = phase(join(work, 'phase-churn'), F, cfg.digest_churn);
  const direct = phase(join(work, 'phase-direct'), F, cfg.digest_p2p);
  const ratio = (a, b) => (a != null && b ? a / b : null);
  const f = (x, d = 2) => (x === null || x === undefined ? 'n/a' : typeof x === 'number' ? x.toFixed(d) : String(x));
  const mib = (b) => (b === null || b === undefined ? 'n/a' : (b / 1048576).toFixed(1));

  const cpuNote = (p) =>
    `CPU s over ${f(p.wall, 0)} s: agents ${f(p.agentsCpuS, 1)}, clients ${f(p.clientCpuS, 1)}, seed ${f(p.seedCpuS, 1)}, registry ${f(p.registryCpuS, 1)}` +
    (p.split ? `; machine: user ${p.split.user} %, sys ${p.split.system} %, softirq ${p.split.irq} %, iowait ${p.split.iowait} %` : '') +
    (p.foreign && p.foreign.cpuS > 1 ? `; NOT OURS: other processes used ${p.foreign.cpuS} CPU-s (${p.foreign.top.map((t) => `${t.cmd.slice(0, 60)}: ${t.cpuS} s`).join('; ')})` : '');
  const wire = (p, withSeed = true) => {
    if (!p.net) return null;
    const peak = (k) => Math.max(0, ...p.netSeries.map((x) => x[k]));
    const capMB = (N * Number(cfg.cap_mbit)) / 8;
    return [
      `${mib(p.net.agentsDown)}/${mib(p.net.agentsUp)}`,
      '',
      `agents' downlinks: mean ${(p.net.agentsDown / 1e6 / p.wall).toFixed(1)} MB/s, peak ${peak('down')} MB/s of ${capMB.toFixed(0)}` +
        (withSeed ? `; seed uplink peak ${peak('seed')} MB/s of ${(Number(cfg.seed_mbit) / 8).toFixed(0)}` : '') +
        `; registry egress peak ${peak('reg')} MB/s of ${(Number(cfg.registry_mbit) / 8).toFixed(0)}`,
    ];
  };
  const lines = [];
  const row = (name, value, target = '', note = '') => lines.push(`  ${name.padEnd(38)} ${String(value).padStart(12)}   ${target.padEnd(14)} ${note}`);
  lines.push('');
  lines.push(`P2P distribution benchmark: ${N} agents, blob ${mib(F)} MiB, shaping: ${cfg.shaping}, mode: ${cfg.mode}`);
  lines.push(`  caps: agent up/down ${cfg.cap_mbit} Mbit/s, seed up ${cfg.seed_mbit} Mbit/s, registry egress ${cfg.registry_mbit} Mbit/s${cfg.shaping === 'in-process' ? ' (in-process: registry egress not capped; direct clients use curl --limit-rate)' : `, MTU ${cfg.mtu}`}`);
  lines.push(`  Kumar-Ross bound = max(F/u_seed ${terms.seed.toFixed(1)} s, F/d_min ${terms.dmin.toFixed(1)} s, N*F/(u_seed+sum u) ${terms.swarm.toFixed(1)} s) = ${bound.toFixed(1)} s`);
  lines.push(`  (caps are on the wire; TCP/IP/HTTP headers cost ~3-5 %, so ~1.05x is the practical floor)`);
  lines.push(`  code: ${cfg.git_head}${Number(cfg.src_dirty_files) > 0 ? ` + ${cfg.src_dirty_files} uncommitted src/ files` : ''}${cfg.build_ok === '0' ? ' (npm run build reported errors)' : ''}; agents advertise caps to the scheduler (--upload-limit): ${cfg.advertise_caps === '1' || cfg.shaping === 'in-process' ? 'yes' : 'no'}`);
  if (p2p?.foreign && p2p.wall && p2p.foreign.cpuS > 0.1 * p2p.wall * Number(cfg.cpus || 2)) {
    lines.push(`  NOTE: other processes on this machine used ${p2p.foreign.cpuS} CPU-s during the P2P run (${((100 * p2p.foreign.cpuS) / (p2p.wall * Number(cfg.cpus || 2))).toFixed(0)} % of the CPU; top: ${p2p.foreign.top[0]?.cmd.slice(0, 70)}): CPU figures are skewed.`);
  }
  if (p2p?.idlePct != null && p2p.idlePct < 10) {
    lines.push(`  NOTE: the P2P run was CPU-bound (mean CPU idle ${p2p.idlePct.toFixed(1)} % on ${cfg.cpus} cores): times reflect this machine's CPU, not the network; lower BENCH_CAP_MBIT.`);
  }
  lines.push('');
  lines.push(`  ${'figure'.padEnd(38)} ${'value'.padStart(12)}   ${'target'.padEnd(14)} note`);
  if (p2p) {
    lines.push(' P2P run (all agents at once, cold caches, cold seed)');
    row('completed / agents', `${p2p.completed}/${p2p.clients}`, 'all', p2p.failures.length ? `FAILURES: ${JSON.stringify(p2p.failures.slice(0, 5))}` : 'digest verified by every client');
    row('p50 / p99 / max (s)', `${f(p2p.p50, 1)}/${f(p2p.p99, 1)}/${f(p2p.max, 1)}`);
    row('first byte p50 / max (s)', `${f(p2p.ttfbP50, 1)}/${f(p2p.ttfbMax, 1)}`, '', 'from the common start to the first body byte at the client (curl time_starttransfer)');
    row('max / bound', f(ratio(p2p.max, bound)), '<= 1.3', `bound ${bound.toFixed(1)} s`);
    row('seed fetch from registry (s)', f(p2p.seedFetchS, 1), '', 'on the critical path (no preheat)');
    row('registry egress / blob', f(ratio(p2p.registryBytes, F), 3), '<= 1.05', `${mib(p2p.registryBytes)} MiB; ${p2p.registryBlobGets ?? 'n/a'} blob GETs in the access log`);
    row('agent bytes from peers / seed (MiB)', `${mib(p2p.tot.fromPeers)}/${mib(p2p.tot.fromSeed)}`, '', `share from seed ${f(ratio(p2p.tot.fromSeed, p2p.tot.fromSeed + p2p.tot.fromPeers), 3)}`);
    row('agent fallbacks / origin MiB', `${p2p.tot.fallbacks}/${mib(p2p.tot.origin)}`, '0', `failed downloads ${p2p.tot.failedDownloads}, corrupt pieces ${p2p.tot.corrupt}`);
    if (wire(p2p)) row('wire MiB: agents down / up', ...wire(p2p));
    row('piece requests to agents / busy', `${p2p.tot.pieceRequests}/${p2p.tot.busy}`, '', 'answered by agents (the seed not counted)');
    row('scheduler CPU s (share of one core)', `${f(p2p.schedCpuS)} (${f(p2p.schedShare * 100, 1)} %)`, '', `announces ${p2p.sched.announces ?? 'n/a'}, parents handed out ${p2p.sched.parents ?? 'n/a'}, bad-peer reports ${p2p.sched.badReports ?? 'n/a'}, back-to-source grants ${p2p.sched.b2s ?? 'n/a'}`);
    row('agent peak RSS max / mean (MB)', `${f(p2p.agentRssMax, 0)}/${f(p2p.agentRssMean, 0)}`, '< 100', `seed ${f(p2p.seedRssMb, 0)} MB, scheduler ${f(p2p.schedRssMb, 0)} MB`);
    row('CPU idle mean / min 1-s (%)', `${f(p2p.idlePct, 1)}/${f(p2p.idleMinPct, 1)}`, '> 10', cpuNote(p2p));
  }
  if (churn) {
    lines.push(` Churn run (fresh caches, new blob, ${churn.killed.length} agents SIGKILLed at ${f(Number(churn.meta.kill_at_s), 1)} s)`);
    row('survivors completed', `${churn.completed}/${churn.clients - churn.killed.length}`, 'all', churn.failures.length ? `FAILURES: ${JSON.stringify(churn.failures.slice(0, 5))}` : 'digest verified by every survivor');
    row('p50 / p99 / max (s)', `${f(churn.p50, 1)}/${f(churn.p99, 1)}/${f(churn.max, 1)}`);
    row('churn max / bound', f(ratio(churn.max, bound)), '<= 1.6');
    row('registry egress / blob', f(ratio(churn.registryBytes, F), 3), '<= 1.05', `${churn.registryBlobGets ?? 'n/a'} blob GETs`);
    row('agent fallbacks / origin MiB', `${churn.tot.fallbacks}/${mib(churn.tot.origin)}`, '', `bad-peer reports ${churn.sched.badReports ?? 'n/a'}`);
    if (wire(churn)) row('wire MiB: agents down / up', ...wire(churn));
    row('agent peak RSS max (MB)', f(churn.agentRssMax, 0), '< 100');
    row('CPU idle mean / min 1-s (%)', `${f(churn.idlePct, 1)}/${f(churn.idleMinPct, 1)}`, '> 10', cpuNote(churn));
  }
  if (direct) {
    lines.push(' Direct baseline (every agent namespace pulls from the registry, same shaping)');
    row('completed / agents', `${direct.completed}/${direct.clients}`, 'all', direct.failures.length ? `FAILURES: ${JSON.stringify(direct.failures.slice(0, 5))}` : '');
    row('p50 / max (s)', `${f(direct.p50, 1)}/${f(direct.max, 1)}`, '', `client-server bound max(N*F/u_reg, F/d) = ${directBound.toFixed(1)} s`);
    row('first byte p50 / max (s)', `${f(direct.ttfbP50, 1)}/${f(direct.ttfbMax, 1)}`);
    row('registry egress / blob', f(ratio(direct.registryBytes, F), 2), `(= N)`);
    if (wire(direct, false)) row('wire MiB: agents down / up', ...wire(direct, false));
    row('P2P speed-up (direct max / P2P max)', f(ratio(direct.max, p2p?.max), 2));
    row('CPU idle mean / min 1-s (%)', `${f(direct.idlePct, 1)}/${f(direct.idleMinPct, 1)}`, '', cpuNote(direct));
  }
  lines.push('');
  process.stdout.write(lines.join('\n') + '\n');
  const out = {
    peers: N,
    blob_mib: round(F / 1048576, 1),
    shaping: cfg.shaping,
    mtu: cfg.mtu ? Number(cfg.mtu) : null,
    mode: cfg.mode,
    cap_mbit: Number(cfg.cap_mbit),
    seed_mbit: Number(cfg.seed_mbit),
    registry_mbit: Number(cfg.registry_mbit),
    completed: p2p?.completed ?? null,
    failures: p2p?.failures.length ?? null,
    max_s: round(p2p?.max),
    p50_s: round(p2p?.p50),
    p99_s: round(p2p?.p99),
    ttfb_p50_s: round(p2p?.ttfbP50),
    ttfb_max_s: round(p2p?.ttfbMax),
    bound_s: round(bound),
    ratio_to_bound: round(ratio(p2p?.max, bound), 3),
    seed_fetch_s: round(p2p?.seedFetchS),
    origin_ratio: round(ratio(p2p?.registryBytes, F), 4),
    agent_fallbacks: p2p?.tot.fallbacks ?? null,
    agent_piece_requests: p2p?.tot.pieceRequests ?? null,
    agent_busy_answers: p2p?.tot.busy ?? null,
    bytes_from_seed_share: round(ratio(p2p?.tot.fromSeed, (p2p?.tot.fromSeed ?? 0) + (p2p?.tot.fromPeers ?? 0)), 4),
    churn_killed: churn?.killed.length ?? null,
    churn_completed: churn?.completed ?? null,
    churn_failures: churn?.failures.length ?? null,
    churn_max_s: round(churn?.max),
    churn_ratio_to_bound: round(ratio(churn?.max, bound), 3),
    churn_origin_ratio: round(ratio(churn?.registryBytes, F), 4),
    churn_fallbacks: churn?.tot.fallbacks ?? null,
    direct_max_s: round(direct?.max),
    direct_p50_s: round(direct?.p50),
    direct_ttfb_p50_s: round(direct?.ttfbP50),
    direct_ttfb_max_s: round(direct?.ttfbMax),
    direct_origin_ratio: round(ratio(direct?.registryBytes, F), 3),
    direct_failures: direct?.failures.length ?? null,
    scheduler_cpu_s: round(p2p?.schedCpuS),
    scheduler_cpu_share: round(p2p?.schedShare, 4),
    agent_rss_mb: round(p2p?.agentRssMax, 1),
    agent_rss_mb_mean: round(p2p?.agentRssMean, 1),
    churn_agent_rss_mb: round(churn?.agentRssMax, 1),
    cpu_idle_pct: round(p2p?.idlePct, 1),
    cpu_bound: p2p?.idlePct != null ? p2p.idlePct < 10 : null,
    foreign_cpu_s: p2p?.foreign?.cpuS ?? null,
    cpu_split: p2p?.split ?? null,
    cpu_idle_min_pct: round(p2p?.idleMinPct, 1),
    churn_cpu_idle_pct: round(churn?.idlePct, 1),
    direct_cpu_idle_pct: round(direct?.idlePct, 1),
    p2p_agent_download_failures: p2p?.tot.failedDownloads ?? null,
    scheduler_back_to_source_grants: p2p?.sched.b2s ?? null,
    scheduler_bad_peer_reports: p2p?.sched.badReports ?? null,
    advertise_caps: cfg.advertise_caps === '1' || cfg.shaping === 'in-process',
    git_head: cfg.git_head,
    src_dirty_files: Number(cfg.src_dirty_files),
    build_ok: cfg.build_ok !== '0',
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

/** Counts warn/error log lines (pino level >= 40) by message over the given files; prints the top ones. */
function logSummary(files) {
  const counts = new Map();
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      let o;
      try {
        o = JSON.parse(line);
      } catch {
        continue;
      }
      if (!(o.level >= 40)) continue;
      const detail = String(o.reason ?? o.err?.message ?? o.err ?? o.detail ?? '').replace(/[0-9a-f]{64}/g, '<hex>').replace(/\d+/g, 'N').slice(0, 90);
      const key = `${o.level >= 50 ? 'error' : 'warn'}: ${o.msg}${detail ? ` (${detail})` : ''}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 12);
  for (const [k, n] of top) console.log(`${String(n).padStart(6)}  ${k}`);
}

// ---------------------------------------------------------------------------------------------- main
switch (cmd) {
  case 'sample':
    if (args.length < 4) fail('usage: sample OUT STOP PIDS MAX_S [ROOT_PID]');
    await sample(args[0], args[1], args[2], Number(args[3]), args[4] ? Number(args[4]) : 0);
    break;
  case 'prom': {
    const v = promFile(args[0], args[1], args[2]);
    console.log(v === null ? 0 : v);
    break;
  }
  case 'stale':
    process.exit(stale(args[0]) ? 0 : 1);
    break;
  case 'logsummary':
    logSummary(args);
    break;
  case 'series': {
    // Per-second aggregate wire rates of a phase (MB/s), for the progress log.
    const sm = readJson(args[0], {});
    const ser = sm.netSeries ?? [];
    if (ser.length) {
      console.log(`agents down MB/s per s: ${ser.map((x) => x.down).join(' ')}`);
      console.log(`seed up MB/s per s:     ${ser.map((x) => x.seed).join(' ')}`);
      console.log(`CPU idle % per s:       ${(sm.idleSeries ?? []).join(' ')}`);
    }
    break;
  }
  case 'report':
    report(args[0]);
    break;
  default:
    fail(`unknown command ${cmd ?? ''}`);
}
