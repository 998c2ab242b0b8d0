// Starts a real `shoal serve` process on a free loopback port, for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const shoalBin = join(repoRoot, 'dist', 'cli', 'main.js');
/** Node flags every long-lived role gets, as bin/shoal.js's shebang gives them (see the comment there). */
export const roleNodeFlags = ['--no-concurrent-recompilation'];

export interface RunningShoal {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  /** e.g. 127.0.0.1:40123, the form container clients want */
  host: string;
  dataDir: string;
  proc: ChildProcess;
  /** Everything the process wrote to stdout/stderr so far. */
  output: string[];
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export interface StartOptions {
  dataDir?: string;
  /** Extra CLI flags after `serve`. */
  args?: string[];
  env?: Record<string, string>;
  /** Listen address host part; defaults to 127.0.0.1. */
  listenHost?: string;
}

/** Spawns `node dist/cli/main.js serve --listen HOST:0 --data DIR` and waits for its "listening" log line. */
export async function startShoal(opts: StartOptions = {}): Promise<RunningShoal> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'shoal-test-')));
  const listenHost = opts.listenHost ?? '127.0.0.1';
  const proc = spawn(
    process.execPath,
    [...roleNodeFlags, shoalBin, 'serve', '--listen', `${listenHost}:0`, '--data', dataDir, '--log-level', 'info', ...(opts.args ?? [])],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`shoal did not start in 15s:\n${output.join('\n')}`)), 15_000);
    const onLine = (line: string) => {
      output.push(line);
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'listening' && rec.address) {
          clearTimeout(timer);
          resolve(rec.address as string);
        }
      } catch {
        /* not JSON: keep it for diagnostics */
      }
    };
    createInterface({ input: proc.stdout! }).on('line', onLine);
    createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`shoal exited with ${code} before listening:\n${output.join('\n')}`));
    });
  });
  const ownsData = opts.dataDir === undefined;
  return {
    url: `http://${address}`,
    host: address,
    dataDir,
    proc,
    output,
    async stop(stopOpts = {}) {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const killTimer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killTimer);
      }
      if (ownsData && !stopOpts.keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
