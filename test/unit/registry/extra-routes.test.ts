// Extra (non-/v2) routes: exact paths, and prefixes (keys ending in "/") where the longest wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createRegistryApp } from '../../../src/registry/app.js';
import { createMetrics } from '../../../src/server/metrics.js';
import type { RegistryService } from '../../../src/registry/service.js';

test('extra routes: exact match, then the longest matching prefix', async () => {
  const answer = (who: string) => (_req: unknown, res: import('node:http').ServerResponse) => void res.end(who);
  const app = createRegistryApp({
    service: {} as RegistryService,
    metrics: createMetrics(),
    log: pino({ level: 'silent' }),
    accessLog: 'off',
    extraRoutes: { '/api/v1/': answer('admin'), '/api/v1/chains/': answer('chains-prefix'), '/api/v1/chains': answer('chains-exact'), '/healthz': answer('health') },
  });
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const get = async (p: string) => (await fetch(`${base}${p}`)).text();
    assert.equal(await get('/api/v1/chains'), 'chains-exact');
    assert.equal(await get('/api/v1/chains/_runs?limit=1'), 'chains-prefix');
    assert.equal(await get('/api/v1/users'), 'admin');
    assert.equal(await get('/healthz'), 'health');
    assert.equal((await fetch(`${base}/api/v2/x`)).status, 404);
  } finally {
    server.close();
  }
});
