// The metadata seam. SQLite is the embedded default; PostgreSQL follows the same contract.
// Every implementation passes the shared suite in test/unit/meta/meta-store.suite.ts.
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';

export interface ManifestRecord {
  repo: string;
  digest: Digest;
  mediaType: string;
  size: number;
  artifactType?: string;
  subject?: Digest;
  annotations?: Record<string, string>;
  createdAt: number;
}

export interface PutManifestInput {
  repo: string;
  digest: Digest;
  mediaType: string;
  size: number;
  artifactType?: string;
  subject?: Digest;
  annotations?: Record<string, string>;
  /** Config and layers: must be linked into `repo` and live. */
  blobs: Digest[];
  /** Index children: must be manifests of `repo`. */
  manifests: Digest[];
  tags: string[];
}

export interface BlobLink {
  digest: Digest;
  size: number;
}

export type ReserveResult = 'ok' | 'deleting';

export interface PageOptions {
  limit: number;
  last?: string;
}

export interface UploadSession {
  id: string;
  repo: string;
  startedAt: number;
}

export interface GcCandidate {
  digest: Digest;
  size: number;
}

export interface MetaStore {
  // Blobs: one global row per digest (the GC state machine) plus per-repository links.
  /** Declare that `digest` is about to be (re)written; 'deleting' means GC owns it right now, retry shortly. */
  reserveBlob(digest: Digest, size: number, now: number): Promise<ReserveResult>;
  /** Links a live blob into a repository (after upload or mount). Creates the repository. */
  linkBlob(repo: string, digest: Digest, now: number): Promise<void>;
  /** The blob as seen from `repo`: null unless linked there and live. */
  getBlobLink(repo: string, digest: Digest): Promise<BlobLink | null>;
  /** Live blob known anywhere (for anonymous mounts). */
  getLiveBlob(digest: Digest): Promise<BlobLink | null>;
  /** Refresh the GC grace period of a blob (HEAD revives a candidate, as in Harbor). */
  touchBlob(digest: Digest, now: number): Promise<void>;
  unlinkBlob(repo: string, digest: Digest): Promise<boolean>;

  // Manifests, tags, referrers.
  /** Atomically checks every referenced blob/manifest and stores manifest, references and tags. Throws MANIFEST_BLOB_UNKNOWN. */
  putManifest(input: PutManifestInput, now: number): Promise<void>;
  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | null>;
  resolveTag(repo: string, tag: string): Promise<Digest | null>;
  /** Removes the manifest, its references and every tag pointing to it. */
  deleteManifest(repo: string, digest: Digest): Promise<boolean>;
  deleteTag(repo: string, tag: string): Promise<boolean>;
  listTags(repo: string, page: PageOptions): Promise<string[]>;
  listReferrers(repo: string, subject: Digest, artifactType?: string): Promise<Descriptor[]>;
  repositoryExists(repo: string): Promise<boolean>;
  listRepositories(page: PageOptions): Promise<string[]>;
  /** Bytes of distinct live blobs and manifests in repository `namespace` and every `namespace/...` (for quotas). */
  storageUsed(namespace: string): Promise<number>;
  /** Whether `digest` already counts towards storageUsed(namespace) (a mount of it adds nothing). */
  namespaceHolds(namespace: string, digest: Digest): Promise<boolean>;

  // Upload sessions.
  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | null>;
  deleteUpload(id: string): Promise<void>;
  listUploadsStartedBefore(cutoff: number): Promise<UploadSession[]>;

  // Garbage collection.
  /** Untagged manifests, not an index child or a referrer of a present subject, untouched since `cutoff`. */
  listUntaggedManifests(cutoff: number): Promise<Array<{ repo: string; digest: Digest }>>;
  /** Deletes the manifest only if it is still untagged and unreferenced (re-checked atomically). */
  deleteUntaggedManifest(repo: string, digest: Digest, cutoff: number): Promise<boolean>;
  /** Removes repository links to blobs that no manifest of that repository uses, linked before `cutoff`. */
  pruneBlobLinks(cutoff: number): Promise<number>;
  /** Blobs no manifest references, untouched since `cutoff` and live. */
  listGcCandidates(cutoff: number, limit: number): Promise<GcCandidate[]>;
  /** Atomically re-checks candidacy and moves live → deleting. false when the blob was revived or referenced meanwhile. */
  markDeleting(digest: Digest, cutoff: number, now: number): Promise<boolean>;
  /** Forget a blob whose file is gone (deleting → removed). */
  finishDeleting(digest: Digest): Promise<void>;
  /** Blobs left in `deleting` (e.g. GC crashed mid-way) since before `cutoff`. */
  listStuckDeleting(cutoff: number): Promise<Digest[]>;
  /** For a file in storage with no row at all: atomically insert it as 'deleting' so writers wait. false if a row exists. */
  claimOrphan(digest: Digest, now: number): Promise<boolean>;

  close(): Promise<void>;
}
