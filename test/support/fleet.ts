// Starts the P2P roles (scheduler, seed, agents) as real `shoal` processes on 127.0.0.x
// addresses, each with its own data dir, and stops them by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roleNodeFlags, shoalBin } from './server.js';

export interface RoleProcess {
  role: string;
  url: string;
  host: string;
  proc: ChildProcess;
  output: string[];
  dataDir?: string;
  /** Log records (JSON lines) written so far. */
  records(): Array<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<RoleProcess>();

export async function startRole(role: 'scheduler' | 'seed' | 'agent', listen: string, args: string[], opts: { withData?: boolean } = {}): Promise<RoleProcess> {
  const dataDir = opts.withData === false || role === 'scheduler' ? undefined : await mkdtemp(join(tmpdir(), `shoal-${role}-`));
  const proc = spawn(process.execPath, [...roleNodeFlags, shoalBin, role, '--listen', listen, ...(dataDir ? ['--data', dataDir] : []), '--log-level', 'info', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start:\n${output.join('\n')}`)), 15_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      output.push(line);
      if (line.includes('"msg":"listening"')) {
        clearTimeout(timer);
        resolve(JSON.parse(line).address as string);
      }
    });
    createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited (${code}) before listening:\n${output.join('\n')}`));
    });
  });
  const rp: RoleProcess = {
    role,
    url: `http://${address}`,
    host: address,
    proc,
    output,
    dataDir,
    records: () => output.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    async kill(signal = 'SIGTERM') {
      live.delete(rp);
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  live.add(rp);
  return rp;
}

/** Stops every role still running (for after() hooks). */
export async function stopAllRoles(): Promise<void> {
  await Promise.all([...live].map((r) => r.kill()));
}

/** Counts registry access-log lines for GETs of a blob that were answered with a body. */
export function registryBlobGets(registryOutput: string[], digest: string): number {
  return registryOutput.filter((l) => l.includes('"msg":"request"') && l.includes('"method":"GET"') && l.includes(`/blobs/${digest}"`) && /"status":20[06]/.test(l)).length;
}
