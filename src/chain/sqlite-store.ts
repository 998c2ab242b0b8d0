// SQLite ChainStore in its own file (data/chain.db) so the registry's metadata schema stays its own.
import type Database from 'better-sqlite3';
import { openSqlite } from '../meta/sqlite.js';
import type { Digest } from '../oci/digest.js';
import type { BlockedImage, ChainDefinition, GatePolicy, LogLine, Run, StageName } from './model.js';
import type { ChainStore, RunQuery } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS chains (name TEXT PRIMARY KEY, definition TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain_runs (
  id TEXT PRIMARY KEY, chain TEXT NOT NULL, repo TEXT NOT NULL, digest TEXT NOT NULL, status TEXT NOT NULL,
  created_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chain_runs_by_created ON chain_runs (created_at);
CREATE INDEX IF NOT EXISTS chain_runs_by_status ON chain_runs (status);
CREATE TABLE IF NOT EXISTS chain_run_logs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at INTEGER NOT NULL, stage TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chain_run_logs_by_run ON chain_run_logs (run_id, seq);
CREATE TABLE IF NOT EXISTS gate_policies (namespace TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gate_blocked (repo TEXT NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (repo, digest));
`;

export class SqliteChainStore implements ChainStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = openSqlite(file);
    this.db.exec(SCHEMA);
  }

  async putChain(chain: ChainDefinition): Promise<void> {
    this.db
      .prepare('INSERT INTO chains (name, definition, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at')
      .run(chain.name, JSON.stringify(chain), Date.now());
  }

  async getChain(name: string): Promise<ChainDefinition | null> {
    const row = this.db.prepare('SELECT definition FROM chains WHERE name = ?').get(name) as { definition: string } | undefined;
    return row ? (JSON.parse(row.definition) as ChainDefinition) : null;
  }

  async listChains(): Promise<ChainDefinition[]> {
    const rows = this.db.prepare('SELECT definition FROM chains ORDER BY name').all() as Array<{ definition: string }>;
    return rows.map((r) => JSON.parse(r.definition) as ChainDefinition);
  }

  async deleteChain(name: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM chains WHERE name = ?').run(name).changes > 0;
  }

  async createRun(run: Run): Promise<void> {
    this.db
      .prepare('INSERT INTO chain_runs (id, chain, repo, digest, status, created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(run.id, run.chain, run.repo, run.digest, run.status, run.createdAt, JSON.stringify(run));
  }

  async updateRun(run: Run): Promise<void> {
    const changed = this.db.prepare('UPDATE chain_runs SET status = ?, body = ? WHERE id = ?').run(run.status, JSON.stringify(run), run.id).changes;
    if (changed === 0) throw new Error(`run ${run.id} does not exist`);
  }

  async getRun(id: string): Promise<Run | null> {
    const row = this.db.prepare('SELECT body FROM chain_runs WHERE id = ?').get(id) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as Run) : null;
  }

  async listRuns(query: RunQuery = {}): Promise<Run[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.chain) (where.push('chain = ?'), args.push(query.chain));
    if (query.repo) (where.push('repo = ?'), args.push(query.repo));
    if (query.digest) (where.push('digest = ?'), args.push(query.digest));
    if (query.status) (where.push('status = ?'), args.push(query.status));
    const sql = `SELECT body FROM chain_runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, rowid DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, query.limit ?? 50) as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as Run);
  }

  async unfinishedRuns(): Promise<Run[]> {
    const rows = this.db.prepare(`SELECT body FROM chain_runs WHERE status IN ('queued', 'running') ORDER BY created_at, rowid`).all() as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as Run);
  }

  async appendLog(runId: string, stage: StageName | 'run', message: string, at: number): Promise<LogLine> {
    const info = this.db.prepare('INSERT INTO chain_run_logs (run_id, at, stage, message) VALUES (?, ?, ?, ?)').run(runId, at, stage, message);
    return { seq: Number(info.lastInsertRowid), runId, at, stage, message };
  }

  async logs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    const rows = this.db.prepare('SELECT seq, run_id, at, stage, message FROM chain_run_logs WHERE run_id = ? AND seq > ? ORDER BY seq').all(runId, afterSeq) as Array<{
      seq: number;
      run_id: string;
      at: number;
      stage: StageName | 'run';
      message: string;
    }>;
    return rows.map((r) => ({ seq: r.seq, runId: r.run_id, at: r.at, stage: r.stage, message: r.message }));
  }

  async putGatePolicy(policy: GatePolicy): Promise<void> {
    this.db.prepare('INSERT INTO gate_policies (namespace, body) VALUES (?, ?) ON CONFLICT (namespace) DO UPDATE SET body = excluded.body').run(policy.namespace, JSON.stringify(policy));
  }

  async listGatePolicies(): Promise<GatePolicy[]> {
    const rows = this.db.prepare('SELECT body FROM gate_policies ORDER BY namespace').all() as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as GatePolicy);
  }

  async deleteGatePolicy(namespace: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM gate_policies WHERE namespace = ?').run(namespace).changes > 0;
  }

  async setBlocked(repo: string, digest: Digest, blocked: BlockedImage | null): Promise<void> {
    if (blocked) {
      this.db.prepare('INSERT INTO gate_blocked (repo, digest, body) VALUES (?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET body = excluded.body').run(repo, digest, JSON.stringify(blocked));
    } else {
      this.db.prepare('DELETE FROM gate_blocked WHERE repo = ? AND digest = ?').run(repo, digest);
    }
  }

  async listBlocked(): Promise<BlockedImage[]> {
    const rows = this.db.prepare('SELECT body FROM gate_blocked').all() as Array<{ body: string }>;
    return rows.map((r) => JSON.parse(r.body) as BlockedImage);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
