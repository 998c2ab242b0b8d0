// Referrers pushed after their image was replicated (a signature added once the run finished, a
// re-generated SBOM): they never trigger a run of their own, so they are carried here to every
// target a successful run of a chain already put the image on, together with their own referrers.
import type { Logger } from 'pino';
import type { RegistryEventMap } from '../registry/events.js';
import type { ChainStore } from '../chain/store.js';
import type { ScanOutput } from '../chain/stages.js';
import type { Run } from '../chain/model.js';
import type { ReplicateOutput, ReplicatorPool } from './stage.js';

/** Does this run's image contain `digest` (the image, a platform manifest, or its SBOM)? */
function covers(run: Run, digest: string): boolean {
  if (run.digest === digest) return true;
  const scan = run.stages.find((s) => s.name === 'scan')?.output as ScanOutput | undefined;
  return !!scan && (scan.manifests.includes(digest as never) || scan.sbomDigest === digest);
}

export interface LateReferrers {
  /** Listener for RegistryService.events 'manifest.pushed'. */
  onPushed: (ev: RegistryEventMap['manifest.pushed'][0]) => void;
  /** Resolves when the copies under way have ended (close waits for it). */
  drain(): Promise<void>;
}

export function carryLateReferrers(deps: { store: ChainStore; pool: ReplicatorPool; log: Logger }): LateReferrers {
  const inFlight = new Set<Promise<void>>();
  const carry = async (repo: string, subject: string): Promise<void> => {
    const done = new Set<string>();
    for (const run of await deps.store.listRuns({ repo, limit: 200 })) {
      const replicate = run.stages.find((s) => s.name === 'replicate');
      if (replicate?.status !== 'succeeded' || !covers(run, subject)) continue;
      const chain = await deps.store.getChain(run.chain);
      for (const placed of (replicate.output as ReplicateOutput | undefined)?.targets ?? []) {
        const target = chain?.replicate.targets.find((t) => t.name === placed.name);
        const key = `${target?.url} ${placed.repo}`;
        if (!target || done.has(key)) continue;
        done.add(key);
        const res = await deps.pool.for(target).replicateReferrers({ sourceRepo: repo, reference: subject, targetRepo: placed.repo });
        deps.log.info({ repo, subject, target: target.name, referrers: res.referrers }, `late referrer(s) of ${repo}@${subject} carried to ${target.name}/${placed.repo}`);
      }
    }
  };
  return {
    onPushed(ev) {
      if (!ev.subject) return;
      const p = carry(ev.repo, ev.subject)
        .catch((err) => deps.log.warn({ err, repo: ev.repo, subject: ev.subject }, 'late referrer not replicated (the next full sync retries)'))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
    async drain() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
