// The chain's replicate stage: copies the run's image to every target whose filters match, with
// the target's name rewriting, and verifies the digest the target ends up with.
import { join } from 'node:path';
import { RegistryClient } from '../client/registry-client.js';
import { matchesAny, type ReplicationTarget } from '../chain/model.js';
import type { StageRunner } from '../chain/stage.js';
import { FileUploadJournal, type UploadJournal } from './journal.js';
import { Replicator, type ReplicateResult } from './replicator.js';

export interface ReplicateOutput {
  targets: Array<{ name: string; repo: string; digest: string; bytesSent: number; blobs: ReplicateResult['blobs'] }>;
}

/** Target repository name after rewriting: strip a prefix, then prepend one. */
export function rewriteName(target: Pick<ReplicationTarget, 'rewrite'>, repo: string): string {
  const { stripPrefix, prefix } = target.rewrite;
  const stripped = stripPrefix && repo.startsWith(stripPrefix) ? repo.slice(stripPrefix.length).replace(/^\/+/, '') : repo;
  return `${prefix}${stripped}`;
}

export function targetApplies(target: ReplicationTarget, repo: string, tag: string | undefined): boolean {
  return matchesAny(target.repositories, repo) && (tag === undefined ? true : matchesAny(target.tags, tag));
}

/** Replicators are kept per target so that cross-repository mount hints outlive one run. */
export class ReplicatorPool {
  private readonly replicators = new Map<string, Replicator>();
  readonly journal: UploadJournal;

  /** `source` is where images are read from: this registry in-process (LocalRegistrySource) or any RegistryClient. */
  constructor(
    private readonly source: RegistryClient,
    dataDir: string,
  ) {
    this.journal = new FileUploadJournal(join(dataDir, 'replication-uploads'));
  }

  for(target: ReplicationTarget): Replicator {
    const key = `${target.url} ${target.username ?? ''} ${target.concurrency} ${target.chunkSize}`;
    let r = this.replicators.get(key);
    if (!r) {
      const dest = new RegistryClient(target.url, { username: target.username, password: target.password, userAgent: 'shoal-replicator/0.1' });
      r = new Replicator(this.source, dest, { journal: this.journal, concurrency: target.concurrency, chunkSize: target.chunkSize });
      this.replicators.set(key, r);
    }
    return r;
  }
}

export function replicateStage(pool: ReplicatorPool): StageRunner {
  return {
    async run(ctx) {
      const { run } = ctx;
      const targets = ctx.chain.replicate.targets.filter((t) => targetApplies(t, run.repo, run.tag));
      if (targets.length === 0) return { status: 'skipped', reason: 'no replication target matches this repository and tag' };
      const done = (ctx.attemptState.done ??= {}) as Record<string, ReplicateOutput['targets'][number]>;
      const progressByTarget = new Map<string, [number, number]>();
      const report = () => {
        let d = 0;
        let t = 0;
        for (const [a, b] of progressByTarget.values()) (d += a), (t += b);
        ctx.progress(d, t, 'bytes');
      };
      for (const target of targets) {
        if (done[target.name]) continue;
        const repo = rewriteName(target, run.repo);
        ctx.log(`replicating to ${target.name} as ${repo}`);
        const result = await pool.for(target).replicate({
          sourceRepo: run.repo,
          reference: run.digest,
          targetRepo: repo,
          tags: run.tag ? [run.tag] : [],
          signal: ctx.signal,
          onLog: ctx.log,
          onProgress: (d, t) => {
            progressByTarget.set(target.name, [d, t]);
            report();
          },
        });
        if (result.digest !== run.digest) throw new Error(`target ${target.name} holds ${result.digest}, expected ${run.digest}`);
        done[target.name] = { name: target.name, repo, digest: result.digest, bytesSent: result.bytesSent, blobs: result.blobs };
      }
      const output: ReplicateOutput = { targets: Object.values(done) };
      return { status: 'succeeded', output };
    },
  };
}
