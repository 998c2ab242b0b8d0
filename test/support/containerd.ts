// A private containerd for end-to-end tests: its own root, state, sockets
// and opt dir under a temp dir; `ctr` wrappers (pull with --plain-http, run
// with FIFOs and runc state under the temp dir). stop() kills what it started
// (by pid), unmounts what is left under its root and removes the host paths
// it created (/run/containerd/s, /run/containerd, /opt/containerd) only when
// they did not exist before.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { removeDir, run, sleep, tempDir, which, type RunOptions, type RunResult } from './tools.js';

/** Host paths containerd 1.6 / ctr / the runc shim may create outside the configured dirs. */
const HOST_PATHS = ['/run/containerd/s', '/run/containerd/fifo', '/run/containerd/runc', '/run/containerd', '/opt/containerd'];

export interface Containerd {
  dir: string;
  socket: string;
  namespace: string;
  proc: ChildProcess;
  output: string[];
  /** ctr -a SOCK -n NS ARGS... */
  ctr(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** ctr images pull --plain-http REF (HTTP fetching happens in the ctr process). */
  pull(ref: string, opts?: { platform?: string; allPlatforms?: boolean; hostsDir?: string }): Promise<RunResult>;
  /** ctr run --rm REF ID [CMD...]; returns the container's stdout. */
  runContainer(ref: string, id: string, cmd?: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<Containerd> {
  const bin = which('containerd');
  const ctrBin = which('ctr');
  if (!bin || !ctrBin) throw new Error('containerd/ctr not installed');
  const preexisting = new Set(HOST_PATHS.filter((p) => existsSync(p)));
  const dir = await tempDir('containerd');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const socket = join(dir, 'containerd.sock');
  const fifoDir = join(dir, 'fifo');
  const runcRoot = join(dir, 'runc');
  await Promise.all([root, state, fifoDir, runcRoot, join(dir, 'opt')].map((d) => mkdir(d, { recursive: true })));
  const config = join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${root}"`,
      `state = "${state}"`,
      // The CRI plugin is not needed by ctr and would touch CNI paths.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[debug]',
      `  address = "${join(dir, 'debug.sock')}"`,
      '  level = "info"',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n'),
  );
  const proc = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => output.push(l));
  createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
  // Unique per instance: runc creates /sys/fs/cgroup/[CONTROLLER/]NAMESPACE, which stop() removes.
  // Last resort when the test process exits without running after() hooks.
  const killOnExit = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const namespace = `shoal-e2e-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  const ctr = (args: string[], opts: RunOptions = {}) => run(ctrBin, ['-a', socket, '-n', namespace, ...args], opts);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    // Tasks and containers first, while the daemon still runs.
    if (proc.exitCode === null && existsSync(socket)) {
      const list = await ctr(['containers', 'ls', '-q'], { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
      for (const id of (list?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean)) {
        await ctr(['tasks', 'kill', '-s', 'SIGKILL', id], { allowFail: true, timeoutMs: 10_000 }).catch(() => {});
        await ctr(['tasks', 'rm', '-f', id], { allowFail: true, timeoutMs: 10_000 }).catch(() => {});
        await ctr(['containers', 'rm', id], { allowFail: true, timeoutMs: 10_000 }).catch(() => {});
      }
    }
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    // Shims outlive the daemon; they carry our socket path in their command line.
    for (const pid of processesMentioning(socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await unmountUnder(dir);
    await removeDir(dir);
    await removeCgroups(namespace);
    // runc state of our namespace, when a container was run without --runc-root.
    await removeDir(join('/run/containerd/runc', namespace));
    for (const p of HOST_PATHS) {
      if (preexisting.has(p) || !existsSync(p)) continue;
      // Only empty directories: anything inside belongs to someone else.
      await rmdir(p).catch(() => {});
    }
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`containerd exited with ${proc.exitCode}:\n${output.join('\n')}`);
    }
    if (existsSync(socket)) {
      const v = await ctr(['version'], { allowFail: true, timeoutMs: 5_000 }).catch(() => undefined);
      if (v?.code === 0) break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not answer in 15 s:\n${output.join('\n')}`);
    }
    await sleep(100);
  }

  return {
    dir,
    socket,
    namespace,
    proc,
    output,
    ctr,
    stop,
    pull(ref, opts = {}) {
      const args = ['images', 'pull', '--plain-http'];
      if (opts.platform) args.push('--platform', opts.platform);
      if (opts.allPlatforms) args.push('--all-platforms');
      if (opts.hostsDir) args.push('--hosts-dir', opts.hostsDir);
      return ctr([...args, ref], { timeoutMs: 90_000 });
    },
    runContainer(ref, id, cmd = []) {
      return ctr(['run', '--rm', '--fifo-dir', fifoDir, '--runc-root', runcRoot, ref, id, ...cmd], { timeoutMs: 60_000 });
    },
  };
}

/** Pids of processes whose command line contains `needle` (our socket path is unique per instance). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) pids.push(Number(name));
    } catch {
      /* exited */
    }
  }
  return pids;
}

/** Lazily unmounts every mount point under `dir` (deepest first), so that removing it cannot fail or escape. */
async function unmountUnder(dir: string): Promise<void> {
  let mounts: string[] = [];
  try {
    mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .map((p) => p.replace(/\\040/g, ' '))
      .filter((p) => p === dir || p.startsWith(dir + '/'));
  } catch {
    return;
  }
  mounts.sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    await run('umount', ['-l', m], { allowFail: true, timeoutMs: 10_000 }).catch(() => {});
  }
}

/** Removes the (empty) per-namespace cgroup directories runc left behind, v1 and v2 layouts. */
async function removeCgroups(namespace: string): Promise<void> {
  const base = '/sys/fs/cgroup';
  const candidates = [join(base, namespace)];
  try {
    for (const c of readdirSync(base)) candidates.push(join(base, c, namespace));
  } catch {
    return;
  }
  for (const p of candidates) {
    if (existsSync(p)) await rmdir(p).catch(() => {});
  }
}
