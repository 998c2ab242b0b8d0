import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuthStore } from '../../../src/auth/sqlite-store.js';
import { describeAuthStore } from './auth-store.suite.js';

describeAuthStore('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-auth-'));
  const store = new SqliteAuthStore(join(dir, 'auth.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
