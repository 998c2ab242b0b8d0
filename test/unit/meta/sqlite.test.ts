import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetaStore } from '../../../src/meta/sqlite.js';
import { describeMetaStore } from './meta-store.suite.js';

describeMetaStore('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-meta-'));
  const meta = new SqliteMetaStore(join(dir, 'meta.db'));
  return {
    meta,
    async cleanup() {
      await meta.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
