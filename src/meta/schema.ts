// SQLite schema. Kept to types PostgreSQL accepts too, so the port is mechanical.
export const SCHEMA_VERSION = 1;

export const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS repositories (
  name        TEXT PRIMARY KEY,
  created_at  INTEGER NOT NULL
);
-- One row per stored digest: the online-GC state machine (live -> deleting -> row removed).
-- touched_at is the last upload/HEAD/link/reference; in state 'deleting' it is when deletion began.
CREATE TABLE IF NOT EXISTS blobs (
  digest      TEXT PRIMARY KEY,
  size        INTEGER NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('live', 'deleting')),
  touched_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_links (
  repo        TEXT NOT NULL,
  digest      TEXT NOT NULL,
  linked_at   INTEGER NOT NULL,
  PRIMARY KEY (repo, digest)
);
CREATE INDEX IF NOT EXISTS blob_links_digest ON blob_links (digest);
CREATE TABLE IF NOT EXISTS manifests (
  repo          TEXT NOT NULL,
  digest        TEXT NOT NULL,
  media_type    TEXT NOT NULL,
  size          INTEGER NOT NULL,
  artifact_type TEXT,
  subject       TEXT,
  annotations   TEXT,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (repo, digest)
);
CREATE INDEX IF NOT EXISTS manifests_digest ON manifests (digest);
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (repo, subject) WHERE subject IS NOT NULL;
-- What a manifest references: config/layer blobs and index children.
CREATE TABLE IF NOT EXISTS manifest_refs (
  repo    TEXT NOT NULL,
  digest  TEXT NOT NULL,
  child   TEXT NOT NULL,
  kind    TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
  PRIMARY KEY (repo, digest, child)
);
CREATE INDEX IF NOT EXISTS manifest_refs_child ON manifest_refs (child);
CREATE TABLE IF NOT EXISTS tags (
  repo        TEXT NOT NULL,
  tag         TEXT NOT NULL,
  digest      TEXT NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (repo, tag)
);
CREATE INDEX IF NOT EXISTS tags_digest ON tags (repo, digest);
CREATE TABLE IF NOT EXISTS uploads (
  id          TEXT PRIMARY KEY,
  repo        TEXT NOT NULL,
  started_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
`;
