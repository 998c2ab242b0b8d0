// SQLite MetaStore (better-sqlite3). Synchronous underneath, async at the seam so that
// PostgreSQL drops in. Multi-statement operations run in one IMMEDIATE transaction.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { RegistryError } from '../oci/errors.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { SCHEMA_SQL, SCHEMA_VERSION } from './schema.js';
import type {
  BlobLink,
  GcCandidate,
  ManifestRecord,
  MetaStore,
  PageOptions,
  PutManifestInput,
  ReserveResult,
  UploadSession,
} from './meta-store.js';

/** A GC that left a blob in 'deleting' this long ago is presumed dead; a writer may take the row back. */
const STUCK_DELETING_MS = 30_000;

interface ManifestRow {
  repo: string;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject: string | null;
  annotations: string | null;
  created_at: number;
}

/** Opens (creating its directory) a database in WAL mode with durable commits and a busy timeout. */
export function openSqlite(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  return db;
}

/** Digests linked or stored as manifests in repository `ns` or `ns/...` (binds ns, len(prefix), prefix twice). */
const IN_NAMESPACE = `SELECT digest FROM blob_links WHERE repo = ? OR substr(repo, 1, ?) = ?
           UNION SELECT digest FROM manifests WHERE repo = ? OR substr(repo, 1, ?) = ?`;

export class SqliteMetaStore implements MetaStore {
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(file: string) {
    this.db = openSqlite(file);
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA_SQL);
    const v = this.db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    if (!v) this.db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
    else if (v.version > SCHEMA_VERSION) throw new Error(`metadata schema v${v.version} is newer than this shoal (v${SCHEMA_VERSION}); upgrade shoal`);

    const db = this.db;
    this.stmt = {
      blobState: db.prepare('SELECT state, touched_at FROM blobs WHERE digest = ?'),
      insertBlob: db.prepare(`INSERT INTO blobs (digest, size, state, touched_at) VALUES (?, ?, 'live', ?)`),
      reviveBlob: db.prepare(`UPDATE blobs SET state = 'live', size = ?, touched_at = ? WHERE digest = ?`),
      touchBlob: db.prepare(`UPDATE blobs SET touched_at = ? WHERE digest = ? AND state = 'live'`),
      ensureRepo: db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
      link: db.prepare(`INSERT INTO blob_links (repo, digest, linked_at) VALUES (?, ?, ?)
                        ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at`),
      getLink: db.prepare(`SELECT b.digest, b.size FROM blob_links l JOIN blobs b ON b.digest = l.digest
                           WHERE l.repo = ? AND l.digest = ? AND b.state = 'live'`),
      liveBlob: db.prepare(`SELECT digest, size FROM blobs WHERE digest = ? AND state = 'live'`),
      unlink: db.prepare('DELETE FROM blob_links WHERE repo = ? AND digest = ?'),
      manifestExists: db.prepare('SELECT 1 FROM manifests WHERE repo = ? AND digest = ?'),
      getManifest: db.prepare('SELECT * FROM manifests WHERE repo = ? AND digest = ?'),
      upsertManifest: db.prepare(`INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, created_at)
                                  VALUES (@repo, @digest, @mediaType, @size, @artifactType, @subject, @annotations, @now)
                                  ON CONFLICT (repo, digest) DO NOTHING`),
      insertRef: db.prepare('INSERT OR IGNORE INTO manifest_refs (repo, digest, child, kind) VALUES (?, ?, ?, ?)'),
      upsertTag: db.prepare(`INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)
                             ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`),
      resolveTag: db.prepare('SELECT digest FROM tags WHERE repo = ? AND tag = ?'),
      deleteManifest: db.prepare('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
      deleteRefs: db.prepare('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
      deleteTagsOf: db.prepare('DELETE FROM tags WHERE repo = ? AND digest = ?'),
      deleteTag: db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?'),
      listTags: db.prepare('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?'),
      referrers: db.prepare('SELECT * FROM manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest'),
      repoExists: db.prepare('SELECT 1 FROM repositories WHERE name = ?'),
      listRepos: db.prepare('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?'),
      createUpload: db.prepare('INSERT INTO uploads (id, repo, started_at) VALUES (?, ?, ?)'),
      getUpload: db.prepare('SELECT id, repo, started_at FROM uploads WHERE id = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE id = ?'),
      staleUploads: db.prepare('SELECT id, repo, started_at FROM uploads WHERE started_at < ?'),
      untagged: db.prepare(`SELECT m.repo, m.digest FROM manifests m WHERE 1 = 1 ${UNTAGGED}`),
      untaggedOne: db.prepare(`SELECT 1 FROM manifests m WHERE m.repo = ? AND m.digest = ? ${UNTAGGED}`),
      pruneLinks: db.prepare(`DELETE FROM blob_links WHERE linked_at < ?
          AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = blob_links.repo AND r.child = blob_links.digest)
          AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = blob_links.repo AND m.digest = blob_links.digest)`),
      candidates: db.prepare(`SELECT digest, size FROM blobs b WHERE state = 'live' AND touched_at < ? ${UNREFERENCED} LIMIT ?`),
      markDeleting: db.prepare(`UPDATE blobs AS b SET state = 'deleting', touched_at = ?
          WHERE digest = ? AND state = 'live' AND touched_at < ? ${UNREFERENCED}`),
      finishDeleting: db.prepare(`DELETE FROM blobs WHERE digest = ? AND state = 'deleting'`),
      dropLinks: db.prepare('DELETE FROM blob_links WHERE digest = ?'),
      stuck: db.prepare(`SELECT digest FROM blobs WHERE state = 'deleting' AND touched_at < ?`),
      claimOrphan: db.prepare(`INSERT INTO blobs (digest, size, state, touched_at) VALUES (?, 0, 'deleting', ?) ON CONFLICT (digest) DO NOTHING`),
    };
  }

  async reserveBlob(digest: Digest, size: number, now: number): Promise<ReserveResult> {
    return this.db
      .transaction((): ReserveResult => {
        const row = this.stmt.blobState.get(digest) as { state: string; touched_at: number } | undefined;
        if (!row) {
          this.stmt.insertBlob.run(digest, size, now);
          return 'ok';
        }
        if (row.state === 'deleting' && row.touched_at > now - STUCK_DELETING_MS) return 'deleting';
        this.stmt.reviveBlob.run(size, now, digest);
        return 'ok';
      })
      .immediate();
  }

  async linkBlob(repo: string, digest: Digest, now: number): Promise<void> {
    this.db
      .transaction(() => {
        if (!this.stmt.liveBlob.get(digest)) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored (or is being garbage-collected); upload it again`);
        this.stmt.ensureRepo.run(repo, now);
        this.stmt.link.run(repo, digest, now);
        this.stmt.touchBlob.run(now, digest);
      })
      .immediate();
  }

  async getBlobLink(repo: string, digest: Digest): Promise<BlobLink | null> {
    return (this.stmt.getLink.get(repo, digest) as BlobLink | undefined) ?? null;
  }

  async getLiveBlob(digest: Digest): Promise<BlobLink | null> {
    return (this.stmt.liveBlob.get(digest) as BlobLink | undefined) ?? null;
  }

  async touchBlob(digest: Digest, now: number): Promise<void> {
    this.stmt.touchBlob.run(now, digest);
  }

  async unlinkBlob(repo: string, digest: Digest): Promise<boolean> {
    return this.stmt.unlink.run(repo, digest).changes > 0;
  }

  async putManifest(input: PutManifestInput, now: number): Promise<void> {
    this.db
      .transaction(() => {
        const missingBlobs = input.blobs.filter((d) => !this.stmt.getLink.get(input.repo, d));
        const missingManifests = input.manifests.filter((d) => !this.stmt.manifestExists.get(input.repo, d));
        const missing = [...new Set([...missingBlobs, ...missingManifests])];
        if (missing.length > 0) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} blob(s) or manifest(s) not in repository ${input.repo}; push them first: ${missing.slice(0, 5).join(', ')}`, {
            detail: { missing: missing.slice(0, 100) },
          });
        }
        if (!this.stmt.liveBlob.get(input.digest)) {
          throw new RegistryError('UNAVAILABLE', `manifest content ${input.digest} was garbage-collected while being stored; retry the push`);
        }
        this.stmt.ensureRepo.run(input.repo, now);
        this.stmt.upsertManifest.run({
          repo: input.repo,
          digest: input.digest,
          mediaType: input.mediaType,
          size: input.size,
          artifactType: input.artifactType ?? null,
          subject: input.subject ?? null,
          annotations: input.annotations ? JSON.stringify(input.annotations) : null,
          now,
        });
        for (const d of input.blobs) {
          this.stmt.insertRef.run(input.repo, input.digest, d, 'blob');
          this.stmt.touchBlob.run(now, d);
        }
        for (const d of input.manifests) this.stmt.insertRef.run(input.repo, input.digest, d, 'manifest');
        this.stmt.touchBlob.run(now, input.digest);
        for (const tag of input.tags) this.stmt.upsertTag.run(input.repo, tag, input.digest, now);
      })
      .immediate();
  }

  async getManifest(repo: string, digest: Digest): Promise<ManifestRecord | null> {
    const row = this.stmt.getManifest.get(repo, digest) as ManifestRow | undefined;
    return row ? toManifestRecord(row) : null;
  }

  async resolveTag(repo: string, tag: string): Promise<Digest | null> {
    const row = this.stmt.resolveTag.get(repo, tag) as { digest: Digest } | undefined;
    return row?.digest ?? null;
  }

  async deleteManifest(repo: string, digest: Digest): Promise<boolean> {
    return this.db
      .transaction(() => {
        const removed = this.stmt.deleteManifest.run(repo, digest).changes > 0;
        this.stmt.deleteRefs.run(repo, digest);
        this.stmt.deleteTagsOf.run(repo, digest);
        return removed;
      })
      .immediate();
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.stmt.deleteTag.run(repo, tag).changes > 0;
  }

  async listTags(repo: string, page: PageOptions): Promise<string[]> {
    return (this.stmt.listTags.all(repo, page.last ?? '', page.limit) as Array<{ tag: string }>).map((r) => r.tag);
  }

  async listReferrers(repo: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const rows = this.stmt.referrers.all(repo, subject) as ManifestRow[];
    return rows
      .filter((r) => artifactType === undefined || r.artifact_type === artifactType)
      .map((r) => {
        const d: Descriptor = { mediaType: r.media_type, digest: r.digest as Digest, size: r.size };
        if (r.artifact_type) d.artifactType = r.artifact_type;
        if (r.annotations) d.annotations = JSON.parse(r.annotations);
        return d;
      });
  }

  async repositoryExists(repo: string): Promise<boolean> {
    return this.stmt.repoExists.get(repo) !== undefined;
  }

  async listRepositories(page: PageOptions): Promise<string[]> {
    return (this.stmt.listRepos.all(page.last ?? '', page.limit) as Array<{ name: string }>).map((r) => r.name);
  }

  async storageUsed(namespace: string): Promise<number> {
    const prefix = `${namespace}/`;
    const row = this.db
      .prepare(
        `SELECT COALESCE(SUM(size), 0) AS used FROM blobs WHERE state = 'live' AND digest IN (${IN_NAMESPACE})`,
      )
      .get(namespace, prefix.length, prefix, namespace, prefix.length, prefix) as { used: number };
    return row.used;
  }

  async namespaceHolds(namespace: string, digest: Digest): Promise<boolean> {
    const prefix = `${namespace}/`;
    const row = this.db
      .prepare(`SELECT 1 FROM blobs WHERE state = 'live' AND digest = ? AND digest IN (${IN_NAMESPACE})`)
      .get(digest, namespace, prefix.length, prefix, namespace, prefix.length, prefix);
    return row !== undefined;
  }

  async createUpload(s: UploadSession): Promise<void> {
    this.stmt.createUpload.run(s.id, s.repo, s.startedAt);
  }

  async getUpload(id: string): Promise<UploadSession | null> {
    const row = this.stmt.getUpload.get(id) as { id: string; repo: string; started_at: number } | undefined;
    return row ? { id: row.id, repo: row.repo, startedAt: row.started_at } : null;
  }

  async deleteUpload(id: string): Promise<void> {
    this.stmt.deleteUpload.run(id);
  }

  async listUploadsStartedBefore(cutoff: number): Promise<UploadSession[]> {
    return (this.stmt.staleUploads.all(cutoff) as Array<{ id: string; repo: string; started_at: number }>).map((r) => ({
      id: r.id,
      repo: r.repo,
      startedAt: r.started_at,
    }));
  }

  async listUntaggedManifests(cutoff: number): Promise<Array<{ repo: string; digest: Digest }>> {
    return this.stmt.untagged.all({ cutoff }) as Array<{ repo: string; digest: Digest }>;
  }

  async deleteUntaggedManifest(repo: string, digest: Digest, cutoff: number): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (!this.stmt.untaggedOne.get(repo, digest, { cutoff })) return false;
        this.stmt.deleteManifest.run(repo, digest);
        this.stmt.deleteRefs.run(repo, digest);
        return true;
      })
      .immediate();
  }

  async pruneBlobLinks(cutoff: number): Promise<number> {
    return this.stmt.pruneLinks.run(cutoff).changes;
  }

  async listGcCandidates(cutoff: number, limit: number): Promise<GcCandidate[]> {
    return this.stmt.candidates.all(cutoff, limit) as GcCandidate[];
  }

  async markDeleting(digest: Digest, cutoff: number, now: number): Promise<boolean> {
    return this.stmt.markDeleting.run(now, digest, cutoff).changes > 0;
  }

  async finishDeleting(digest: Digest): Promise<void> {
    this.db
      .transaction(() => {
        // Links go too: a later upload of the same digest elsewhere must not reappear here.
        if (this.stmt.finishDeleting.run(digest).changes > 0) this.stmt.dropLinks.run(digest);
      })
      .immediate();
  }

  async listStuckDeleting(cutoff: number): Promise<Digest[]> {
    return (this.stmt.stuck.all(cutoff) as Array<{ digest: Digest }>).map((r) => r.digest);
  }

  async claimOrphan(digest: Digest, now: number): Promise<boolean> {
    return this.stmt.claimOrphan.run(digest, now).changes > 0;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Untagged, not an index child, not a referrer of a subject still present, and idle since @cutoff. */
const UNTAGGED = `
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = m.repo AND r.child = m.digest)
  AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo = m.repo AND s.digest = m.subject))
  AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest AND b.touched_at >= @cutoff)`;

/**
 * A blob no manifest is and no manifest lists. Repository links alone do not keep a blob: linking
 * touches it, so a recent upload or mount is protected by the grace window instead.
 */
const UNREFERENCED = `
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = b.digest)`;

function toManifestRecord(row: ManifestRow): ManifestRecord {
  const rec: ManifestRecord = {
    repo: row.repo,
    digest: row.digest as Digest,
    mediaType: row.media_type,
    size: row.size,
    createdAt: row.created_at,
  };
  if (row.artifact_type) rec.artifactType = row.artifact_type;
  if (row.subject) rec.subject = row.subject as Digest;
  if (row.annotations) rec.annotations = JSON.parse(row.annotations);
  return rec;
}
