// Online garbage collection, safe with concurrent pushes.
//
// Each blob has a row in the metadata store: live -> deleting -> (row removed). A blob is
// collected only if nothing references it AND it has not been touched (uploaded, linked,
// HEADed, referenced) within the grace window. The move to 'deleting' re-checks both
// conditions atomically; a push that wants the same digest meanwhile waits until the row is
// gone and then writes it afresh, and a manifest PUT that references a 'deleting' blob is refused
// (MANIFEST_BLOB_UNKNOWN), so the client uploads it again. Nothing a committed manifest
// references can disappear.
import type { Logger } from 'pino';
import type { RegistryService } from '../registry/service.js';
import type { Digest } from '../oci/digest.js';

export interface GcOptions {
  dryRun?: boolean;
  /** Also delete manifests without tags (not index children, not referrers of a present subject). */
  deleteUntagged?: boolean;
  /** Upload sessions older than this are purged. */
  uploadTtlMs?: number;
  /** Also remove files in storage that the metadata does not know (walks all of storage). */
  sweepOrphanFiles?: boolean;
}

export interface GcReport {
  dryRun: boolean;
  manifestsDeleted: number;
  linksPruned: number;
  blobsDeleted: number;
  bytesReclaimed: number;
  uploadsPurged: number;
  orphanFilesDeleted: number;
  candidates: Array<{ digest: Digest; size: number }>;
  durationMs: number;
}

const BATCH = 500;
const STUCK_AFTER_MS = 60_000;
const DEFAULT_UPLOAD_TTL_MS = 24 * 3600_000;

export class GarbageCollector {
  private running: Promise<GcReport> | undefined;

  constructor(
    private readonly service: RegistryService,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** One pass; concurrent calls share the pass in progress. */
  run(opts: GcOptions = {}): Promise<GcReport> {
    this.running ??= this.pass(opts).finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(opts: GcOptions): Promise<GcReport> {
    const { meta, blobs, cache, limits } = this.service;
    const started = this.now();
    const cutoff = started - limits.gcGraceMs;
    const dryRun = opts.dryRun ?? false;
    const report: GcReport = { dryRun, manifestsDeleted: 0, linksPruned: 0, blobsDeleted: 0, bytesReclaimed: 0, uploadsPurged: 0, orphanFilesDeleted: 0, candidates: [], durationMs: 0 };

    if (opts.deleteUntagged) {
      // Deleting an index frees its children on the next round; repeat until nothing changes.
      for (let round = 0; round < 16; round++) {
        const untagged = await meta.listUntaggedManifests(cutoff);
        if (untagged.length === 0) break;
        if (dryRun) {
          report.manifestsDeleted += untagged.length;
          break;
        }
        let deleted = 0;
        for (const m of untagged) {
          if (await meta.deleteUntaggedManifest(m.repo, m.digest, cutoff)) {
            cache.deleteManifest(m.repo, m.digest);
            deleted++;
          }
        }
        report.manifestsDeleted += deleted;
        if (deleted === 0) break;
      }
    }

    if (!dryRun) report.linksPruned = await meta.pruneBlobLinks(cutoff);

    for (;;) {
      const batch = await meta.listGcCandidates(cutoff, BATCH);
      if (batch.length === 0) break;
      if (dryRun) {
        report.candidates.push(...batch);
        report.bytesReclaimed += batch.reduce((n, b) => n + b.size, 0);
        break;
      }
      for (const c of batch) {
        if (!(await meta.markDeleting(c.digest, cutoff, this.now()))) continue;
        await blobs.delete(c.digest);
        await meta.finishDeleting(c.digest);
        report.blobsDeleted++;
        report.bytesReclaimed += c.size;
        report.candidates.push(c);
      }
      if (batch.length < BATCH) break;
    }

    if (!dryRun) {
      // A previous pass that died between mark and delete left rows in 'deleting'.
      for (const digest of await meta.listStuckDeleting(this.now() - STUCK_AFTER_MS)) {
        await blobs.delete(digest);
        await meta.finishDeleting(digest);
      }
      const uploadCutoff = this.now() - (opts.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS);
      for (const u of await meta.listUploadsStartedBefore(uploadCutoff)) {
        await meta.deleteUpload(u.id);
        await blobs.abortUpload(u.id);
        report.uploadsPurged++;
      }
      for await (const u of blobs.listUploads()) {
        if (u.startedAt.getTime() < uploadCutoff && !(await meta.getUpload(u.id))) {
          await blobs.abortUpload(u.id);
          report.uploadsPurged++;
        }
      }
    }

    if (opts.sweepOrphanFiles) {
      for await (const b of blobs.list()) {
        if (b.modifiedAt.getTime() >= cutoff) continue;
        if (dryRun) {
          if (!(await meta.getLiveBlob(b.digest))) report.orphanFilesDeleted++;
          continue;
        }
        if (!(await meta.claimOrphan(b.digest, this.now()))) continue;
        await blobs.delete(b.digest);
        await meta.finishDeleting(b.digest);
        report.orphanFilesDeleted++;
      }
    }

    report.durationMs = this.now() - started;
    this.log.info({ gc: { ...report, candidates: report.candidates.length } }, dryRun ? 'gc dry run' : 'gc pass done');
    return report;
  }
}
