// A real Shoal registry (the same code `shoal serve` runs) in this process on a loopback socket,
// for unit tests of modules that talk to registries over HTTP (replicator, gate, chain API).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadServeConfig } from '../../../src/server/config.js';
import { startRegistry, type RunningRegistry, type RegistryExtras } from '../../../src/server/registry-process.js';

export async function startInProcess(opts: { chains?: boolean; extras?: RegistryExtras } = {}): Promise<RunningRegistry & { url: string; stop(): Promise<void> }> {
  const data = await mkdtemp(join(tmpdir(), 'shoal-inproc-'));
  const config = loadServeConfig({
    listen: '127.0.0.1:0',
    data,
    logLevel: 'silent',
    accessLog: 'off',
    maxManifestSize: '8MiB',
    maxBlobSize: '4GiB',
    manifestCacheSize: '16MiB',
    manifestCacheTtl: '10s',
    gcInterval: 'off',
    gcGrace: '1h',
    gcDeleteUntagged: false,
    uploadTtl: '24h',
    chains: opts.chains ?? false,
  });
  const reg = await startRegistry(config, pino({ level: 'silent' }), opts.extras);
  return Object.assign(reg, {
    url: `http://${reg.address}`,
    async stop() {
      await reg.close();
      await rm(data, { recursive: true, force: true });
    },
  });
}
