// Helpers for end-to-end tests that drive real third-party clients:
// finding tools, running commands with timeouts, temp dirs, skip rules.
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Absolute path of an executable found on PATH (plus the sbin dirs, where runc lives), or undefined. */
export function which(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export const inCI = process.env.CI === 'true';
export const isRoot = typeof process.geteuid === 'function' && process.geteuid() === 0;

/**
 * Decides whether a suite that needs `tools` (and optionally root) runs.
 * Returns a skip reason when something is missing and CI is not set; in CI it
 * returns false so that the suite runs and fails loudly (call
 * assertPrerequisites in before()).
 */
export function skipUnless(tools: string[], opts: { root?: boolean } = {}): string | false {
  const missing = tools.filter((t) => !which(t));
  const reasons: string[] = [];
  if (missing.length) reasons.push(`missing tools: ${missing.join(', ')} (run scripts/install-deps.sh)`);
  if (opts.root && !isRoot) reasons.push('needs root');
  if (!reasons.length) return false;
  if (inCI) return false;
  return reasons.join('; ');
}

/** Throws (so the suite fails) when a prerequisite is missing; used in CI, where skipping is not allowed. */
export function assertPrerequisites(tools: string[], opts: { root?: boolean } = {}): void {
  const missing = tools.filter((t) => !which(t));
  if (missing.length) throw new Error(`required tools missing: ${missing.join(', ')} (CI=${process.env.CI ?? ''}); run scripts/install-deps.sh`);
  if (opts.root && !isRoot) throw new Error('this suite needs root (containers, mounts)');
}

export interface RunResult {
  cmd: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  /** Default 120 s. The process gets SIGKILL (by its pid) when it runs longer. */
  timeoutMs?: number;
  /** Return a non-zero result instead of throwing. */
  allowFail?: boolean;
}

/** Processes started by run() that have not exited yet, by pid. */
export const livePids = new Set<number>();

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command to completion, capturing output; throws a detailed error on failure or timeout. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const cmdline = [cmd, ...args].map(quote).join(' ');
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
    const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid) livePids.add(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('error', (e) => {
      clearTimeout(timer);
      if (child.pid) livePids.delete(child.pid);
      reject(new Error(`${cmdline}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid) livePids.delete(child.pid);
      const res: RunResult = {
        cmd: cmdline,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Date.now() - start,
      };
      if (timedOut) return reject(new Error(`timed out after ${timeoutMs} ms: ${cmdline}\n${describe(res)}`));
      if (code !== 0 && !opts.allowFail) return reject(new Error(`command failed (rc=${code ?? signal}): ${cmdline}\n${describe(res)}`));
      resolve(res);
    });
  });
}

function describe(r: RunResult): string {
  const tail = (s: string) => (s.length > 4000 ? '…' + s.slice(-4000) : s);
  return `--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`;
}

/** Kills (SIGKILL, by pid) whatever run() started and is still running; for after() hooks. */
export function killLeftovers(): void {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  livePids.clear();
}

/** A fresh temp dir plus its cleanup. */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `shoal-e2e-${prefix}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (!dir) return;
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Last `n` lines of a server's output, for failure messages. */
export function tail(lines: string[], n = 40): string {
  return lines.slice(-n).join('\n');
}

/**
 * Wraps a test body so that, when it fails, the error message also carries the
 * last lines of the registry's log (the request/response story of the failure).
 */
export function withServerLog<T>(getLog: () => string[] | undefined, fn: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await fn();
    } catch (e) {
      const log = getLog();
      if (log && e instanceof Error) e.message += `\n--- registry log (last 40 lines) ---\n${tail(log)}`;
      throw e;
    }
  };
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Host paths that podman/buildah (as root) write to whatever --root/--runroot
 * say: the shared blob-info cache (/var/lib/containers/cache) and network
 * locks (/run/containers). isolateContainersPaths() makes a runner that
 * starts the command in a private mount namespace where both are bind mounts
 * of dirs under `dir`, so that runs share no cache with each other or with the
 * machine. The mount points are created when missing and, in cleanup(),
 * removed again when empty and created by us. Needs root.
 */
export async function isolateContainersPaths(dir: string): Promise<{
  prefix: (cmd: string, args: string[]) => [string, string[]];
  cleanup: () => Promise<void>;
}> {
  const { mkdir, rmdir } = await import('node:fs/promises');
  const { existsSync } = await import('node:fs');
  const targets = ['/var/lib/containers', '/run/containers'];
  const created: string[] = [];
  for (const t of targets) {
    if (!existsSync(t)) {
      await mkdir(t, { recursive: true });
      created.push(t);
    }
  }
  const sources = targets.map((_, i) => join(dir, `host-${i}`));
  for (const s of sources) await mkdir(s, { recursive: true });
  // mkdir -p: another suite's cleanup may have removed a mount point it had created.
  const script =
    'set -e; mkdir -p /var/lib/containers /run/containers; mount --bind "$1" /var/lib/containers; mount --bind "$2" /run/containers; shift 2; exec "$@"';
  return {
    prefix: (cmd, args) => ['unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', sources[0]!, sources[1]!, cmd, ...args]],
    async cleanup() {
      for (const t of created.reverse()) await rmdir(t).catch(() => {});
    },
  };
}

/**
 * Memoises an async setup. Suites call it at the start of every test instead
 * of doing fallible work in before(): node 20 reports tests behind a failed
 * before() as "cancelled", not "failed", and CI reads the "# fail" count.
 */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}
