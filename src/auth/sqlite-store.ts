// SQLite AuthStore (better-sqlite3) in its own file, auth.db, beside meta.db: tenancy data has its
// own lifecycle (backups, the audit table's growth) and never shares a transaction with blob metadata.
import type Database from 'better-sqlite3';
import { openSqlite } from '../meta/sqlite.js';
import type {
  AuditQuery,
  AuditRecord,
  AuthStore,
  Namespace,
  NetworkPolicy,
  Robot,
  RoleBinding,
  User,
  Visibility,
} from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, is_admin INTEGER NOT NULL, created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS robots (
  name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, permissions TEXT NOT NULL, description TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS namespaces (
  name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, quota_bytes INTEGER, immutable_tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS role_bindings (
  namespace TEXT NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (namespace, principal)
);
CREATE INDEX IF NOT EXISTS role_bindings_principal ON role_bindings (principal);
CREATE TABLE IF NOT EXISTS repo_visibility (repository TEXT PRIMARY KEY, visibility TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS network_policies (
  scope TEXT PRIMARY KEY, internal TEXT NOT NULL, internet TEXT NOT NULL, cidrs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, client_ip TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, at);
`;

interface RobotRow {
  name: string;
  secret_hash: string;
  permissions: string;
  description: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}
interface NamespaceRow {
  name: string;
  created_at: number;
  quota_bytes: number | null;
  immutable_tags: string;
}
interface AuditRow {
  at: number;
  actor: string;
  action: string;
  target: string;
  client_ip: string;
  outcome: string;
  detail: string | null;
}

const toUser = (r: { name: string; password_hash: string; is_admin: number; created_at: number }): User => ({
  name: r.name,
  passwordHash: r.password_hash,
  isAdmin: r.is_admin === 1,
  createdAt: r.created_at,
});
const toRobot = (r: RobotRow): Robot => ({
  name: r.name,
  secretHash: r.secret_hash,
  permissions: JSON.parse(r.permissions),
  description: r.description,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});
const toNamespace = (r: NamespaceRow): Namespace => ({
  name: r.name,
  createdAt: r.created_at,
  quotaBytes: r.quota_bytes,
  immutableTags: JSON.parse(r.immutable_tags),
});
const toPolicy = (r: { scope: string; internal: string; internet: string; cidrs: string }): NetworkPolicy => ({
  scope: r.scope,
  internal: r.internal as NetworkPolicy['internal'],
  internet: r.internet as NetworkPolicy['internet'],
  cidrs: JSON.parse(r.cidrs),
});
const toAudit = (r: AuditRow): AuditRecord => ({
  at: r.at,
  actor: r.actor,
  action: r.action,
  target: r.target,
  clientIp: r.client_ip,
  outcome: r.outcome,
  ...(r.detail ? { detail: JSON.parse(r.detail) } : {}),
});

export class SqliteAuthStore implements AuthStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = openSqlite(file);
    this.db.exec(SCHEMA);
  }

  private get(sql: string, ...args: unknown[]): unknown {
    return this.db.prepare(sql).get(...args);
  }
  private all(sql: string, ...args: unknown[]): unknown[] {
    return this.db.prepare(sql).all(...args);
  }
  private run(sql: string, ...args: unknown[]): number {
    return this.db.prepare(sql).run(...args).changes;
  }

  async putUser(u: User): Promise<void> {
    this.run(
      `INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, is_admin = excluded.is_admin`,
      u.name, u.passwordHash, u.isAdmin ? 1 : 0, u.createdAt,
    );
  }
  async getUser(name: string): Promise<User | null> {
    const r = this.get('SELECT * FROM users WHERE name = ?', name) as Parameters<typeof toUser>[0] | undefined;
    return r ? toUser(r) : null;
  }
  async listUsers(): Promise<User[]> {
    return (this.all('SELECT * FROM users ORDER BY name') as Parameters<typeof toUser>[0][]).map(toUser);
  }
  async deleteUser(name: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.run('DELETE FROM role_bindings WHERE principal = ?', name);
      return this.run('DELETE FROM users WHERE name = ?', name) > 0;
    })();
  }

  async putRobot(r: Robot): Promise<void> {
    this.run(
      `INSERT INTO robots (name, secret_hash, permissions, description, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET secret_hash = excluded.secret_hash, permissions = excluded.permissions,
         description = excluded.description, expires_at = excluded.expires_at, revoked_at = excluded.revoked_at`,
      r.name, r.secretHash, JSON.stringify(r.permissions), r.description, r.createdAt, r.expiresAt, r.revokedAt,
    );
  }
  async getRobot(name: string): Promise<Robot | null> {
    const r = this.get('SELECT * FROM robots WHERE name = ?', name) as RobotRow | undefined;
    return r ? toRobot(r) : null;
  }
  async listRobots(): Promise<Robot[]> {
    return (this.all('SELECT * FROM robots ORDER BY name') as RobotRow[]).map(toRobot);
  }
  async revokeRobot(name: string, at: number): Promise<boolean> {
    return this.run('UPDATE robots SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL', at, name) > 0;
  }
  async deleteRobot(name: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.run('DELETE FROM role_bindings WHERE principal = ?', name);
      return this.run('DELETE FROM robots WHERE name = ?', name) > 0;
    })();
  }

  async createNamespace(name: string, now: number): Promise<boolean> {
    return this.run('INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)', name, now) > 0;
  }
  async getNamespace(name: string): Promise<Namespace | null> {
    const r = this.get('SELECT * FROM namespaces WHERE name = ?', name) as NamespaceRow | undefined;
    return r ? toNamespace(r) : null;
  }
  async listNamespaces(): Promise<Namespace[]> {
    return (this.all('SELECT * FROM namespaces ORDER BY name') as NamespaceRow[]).map(toNamespace);
  }
  async deleteNamespace(name: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.run('DELETE FROM role_bindings WHERE namespace = ?', name);
      this.run('DELETE FROM network_policies WHERE scope = ?', name);
      this.run(`DELETE FROM repo_visibility WHERE repository = ? OR substr(repository, 1, ?) = ?`, name, name.length + 1, `${name}/`);
      return this.run('DELETE FROM namespaces WHERE name = ?', name) > 0;
    })();
  }
  async setQuota(namespace: string, bytes: number | null): Promise<boolean> {
    return this.run('UPDATE namespaces SET quota_bytes = ? WHERE name = ?', bytes, namespace) > 0;
  }
  async setImmutableTags(namespace: string, patterns: string[]): Promise<boolean> {
    return this.run('UPDATE namespaces SET immutable_tags = ? WHERE name = ?', JSON.stringify(patterns), namespace) > 0;
  }
  async bindRole(b: RoleBinding): Promise<void> {
    this.run(
      `INSERT INTO role_bindings (namespace, principal, role) VALUES (?, ?, ?)
       ON CONFLICT (namespace, principal) DO UPDATE SET role = excluded.role`,
      b.namespace, b.principal, b.role,
    );
  }
  async unbindRole(namespace: string, principal: string): Promise<boolean> {
    return this.run('DELETE FROM role_bindings WHERE namespace = ? AND principal = ?', namespace, principal) > 0;
  }
  async listBindings(filter: { namespace?: string; principal?: string }): Promise<RoleBinding[]> {
    return this.all(
      `SELECT namespace, principal, role FROM role_bindings
       WHERE (? IS NULL OR namespace = ?) AND (? IS NULL OR principal = ?) ORDER BY namespace, principal`,
      filter.namespace ?? null, filter.namespace ?? null, filter.principal ?? null, filter.principal ?? null,
    ) as RoleBinding[];
  }

  async setVisibility(repository: string, visibility: Visibility): Promise<void> {
    if (visibility === 'private') this.run('DELETE FROM repo_visibility WHERE repository = ?', repository);
    else this.run(`INSERT OR REPLACE INTO repo_visibility (repository, visibility) VALUES (?, 'public')`, repository);
  }
  async getVisibility(repository: string): Promise<Visibility> {
    return this.get('SELECT 1 FROM repo_visibility WHERE repository = ?', repository) ? 'public' : 'private';
  }
  async listPublicRepositories(): Promise<string[]> {
    return (this.all('SELECT repository FROM repo_visibility ORDER BY repository') as { repository: string }[]).map((r) => r.repository);
  }

  async putNetworkPolicy(p: NetworkPolicy): Promise<void> {
    this.run('INSERT OR REPLACE INTO network_policies (scope, internal, internet, cidrs) VALUES (?, ?, ?, ?)', p.scope, p.internal, p.internet, JSON.stringify(p.cidrs));
  }
  async getNetworkPolicy(scope: string): Promise<NetworkPolicy | null> {
    const r = this.get('SELECT * FROM network_policies WHERE scope = ?', scope) as Parameters<typeof toPolicy>[0] | undefined;
    return r ? toPolicy(r) : null;
  }
  async listNetworkPolicies(): Promise<NetworkPolicy[]> {
    return (this.all('SELECT * FROM network_policies ORDER BY scope') as Parameters<typeof toPolicy>[0][]).map(toPolicy);
  }
  async deleteNetworkPolicy(scope: string): Promise<boolean> {
    return this.run('DELETE FROM network_policies WHERE scope = ?', scope) > 0;
  }

  async appendAudit(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const insert = this.db.prepare('INSERT INTO audit (at, actor, action, target, client_ip, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)');
    // One transaction per batch: one fsync for hundreds of records.
    this.db.transaction(() => {
      for (const r of records) insert.run(r.at, r.actor, r.action, r.target, r.clientIp, r.outcome, r.detail ? JSON.stringify(r.detail) : null);
    })();
  }
  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const target = q.target ?? null;
    return (
      this.all(
        `SELECT at, actor, action, target, client_ip, outcome, detail FROM audit
         WHERE (? IS NULL OR actor = ?) AND (? IS NULL OR action = ?)
           AND (? IS NULL OR substr(target, 1, length(?)) = ?)
           AND at >= ? AND at <= ?
         ORDER BY at DESC, id DESC LIMIT ?`,
        q.actor ?? null, q.actor ?? null, q.action ?? null, q.action ?? null,
        target, target, target, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit,
      ) as AuditRow[]
    ).map(toAudit);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
