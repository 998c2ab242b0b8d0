import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteChainStore } from '../../../src/chain/sqlite-store.js';
import { describeChainStore } from './chain-store.suite.js';

describeChainStore('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-chain-store-'));
  let store = new SqliteChainStore(join(dir, 'chain.db'));
  return {
    store,
    async reopen() {
      await store.close();
      store = new SqliteChainStore(join(dir, 'chain.db'));
      return store;
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
