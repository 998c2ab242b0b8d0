// The scanner's own SQLite file in the data directory (scan.db): imported OSV advisories and the
// per-layer facts cache. Kept apart from meta.db so that importing advisories never contends
// with the registry's metadata writes.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS advisories (
  id          TEXT PRIMARY KEY,
  modified    TEXT,
  summary     TEXT,
  aliases     TEXT NOT NULL,
  document    TEXT NOT NULL,
  imported_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS affected (
  advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
  ecosystem   TEXT NOT NULL,
  name        TEXT NOT NULL,
  entry       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS affected_by_name ON affected (name);
CREATE INDEX IF NOT EXISTS affected_by_advisory ON affected (advisory_id);
CREATE TABLE IF NOT EXISTS layer_facts (
  digest     TEXT NOT NULL,
  format     INTEGER NOT NULL,
  facts      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (digest, format)
);
`;

export const SCAN_DB_FILE = 'scan.db';

export function openScanDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true });
  return openScanDatabaseFile(join(dataDir, SCAN_DB_FILE));
}

export function openScanDatabaseFile(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // Advisories and cache entries can be re-derived: NORMAL keeps WAL commits cheap yet consistent.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  db.exec(SCHEMA);
  return db;
}
