// The registry an end-to-end suite talks to: the real `shoal serve` (default),
// or, with SHOAL_E2E_TARGET=distribution, Debian's docker-registry (CNCF
// Distribution 2.8) on 127.0.0.1, to tell a test's bugs from the server's.
// SHOAL_E2E_LOG_DIR=DIR keeps each registry's log there after the suite.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { startShoal } from './server.js';
import { removeDir, sleep, tempDir, which } from './tools.js';

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  kind: 'shoal' | 'distribution';
  output: string[];
  stop(): Promise<void>;
}

export const targetKind: 'shoal' | 'distribution' =
  process.env.SHOAL_E2E_TARGET === 'distribution' ? 'distribution' : 'shoal';

export async function startRegistry(): Promise<Registry> {
  const reg = targetKind === 'distribution' ? await startDistribution() : await startShoalRegistry();
  const logDir = process.env.SHOAL_E2E_LOG_DIR;
  if (!logDir) return reg;
  // Keep the registry's log for inspection: SHOAL_E2E_LOG_DIR=/some/dir.
  const stop = reg.stop;
  return {
    ...reg,
    async stop() {
      await stop();
      await mkdir(logDir, { recursive: true });
      const name = `${reg.kind}-${basename(process.argv[1] ?? 'test')}-${process.pid}-${Date.now()}.log`;
      await writeFile(join(logDir, name), reg.output.join('\n') + '\n');
    },
  };
}

async function startShoalRegistry(): Promise<Registry> {
  const s = await startShoal();
  return { url: s.url, host: s.host, kind: 'shoal', output: s.output, stop: () => s.stop() };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface DistributionOptions {
  /** An htpasswd file: the registry then asks for basic auth (realm `realm`) and answers /v2/ with 401 when ready. */
  htpasswd?: { path: string; realm: string };
}

export async function startDistribution(o: DistributionOptions = {}): Promise<Registry> {
  const bin = which('docker-registry');
  if (!bin) throw new Error('docker-registry not installed (SHOAL_E2E_TARGET=distribution)');
  const dir = await tempDir('distribution');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: info',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(o.htpasswd ? ['auth:', '  htpasswd:', `    realm: ${o.htpasswd.realm}`, `    path: ${o.htpasswd.path}`] : []),
      '',
    ].join('\n'),
  );
  const proc = spawn(bin, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => output.push(l));
  createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    await removeDir(dir);
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited with ${proc.exitCode}:\n${output.join('\n')}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.status === (o.htpasswd ? 401 : 200)) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start in 15 s:\n${output.join('\n')}`);
    }
    await sleep(100);
  }
  return { url, host: `127.0.0.1:${port}`, kind: 'distribution', output, stop };
}
