// Full sync: reconciles every target of a chain with the source, tag by tag. Catches what pushes
// missed (target down for longer than the retries, chain added later, tags moved on the target).
// Only images the chain's own scan and gate cleared are copied (see src/chain/clearance.ts); for
// the rest the sync starts a run and reports it as queued: that run replicates once it passes.
import type { RegistryClient } from '../client/registry-client.js';
import { readStream } from '../client/registry-client.js';
import { MANIFEST_ACCEPT } from '../client/registry-client.js';
import type { Digest } from '../oci/digest.js';
import { matchesAny, type ChainDefinition } from '../chain/model.js';
import type { Clearance } from '../chain/clearance.js';
import { rewriteName, targetApplies, type ReplicatorPool } from './stage.js';

export interface SyncReport {
  chain: string;
  checked: number;
  upToDate: number;
  replicated: number;
  /** Referrers (signatures, SBOMs) of up-to-date images that a target lacked and got. */
  referrersCopied: number;
  skippedBlocked: number;
  /** Images not cleared yet: a run of the chain was started (or already under way) for each. */
  queued: Array<{ image: string; run: string; started: boolean }>;
  failed: Array<{ image: string; target: string; error: string }>;
  ms: number;
}

export interface SyncOptions {
  source: RegistryClient;
  pool: ReplicatorPool;
  /** Whether the chain cleared this image (scan and gate passed); may start a run for it. */
  clear: (repo: string, digest: Digest, tag: string) => Promise<Clearance>;
  log?: (message: string) => void;
  signal?: AbortSignal;
}

async function getJson<T>(client: RegistryClient, path: string): Promise<T | null> {
  const res = await client.send('GET', path);
  if (res.status !== 200) {
    res.body.resume();
    return null;
  }
  return JSON.parse((await readStream(res.body, 64 * 1024 * 1024)).toString()) as T;
}

/** The tag's digest; 'denied' when the registry refuses it (the pull gate on a blocked image). */
async function headDigest(client: RegistryClient, repo: string, tag: string): Promise<string | 'denied' | undefined> {
  const res = await client.send('HEAD', `/v2/${repo}/manifests/${tag}`, { accept: MANIFEST_ACCEPT });
  res.body.resume();
  if (res.status === 403) return 'denied';
  return res.status === 200 ? String(res.headers['docker-content-digest'] ?? '') || undefined : undefined;
}

export async function syncChain(chain: ChainDefinition, opts: SyncOptions): Promise<SyncReport> {
  const started = Date.now();
  const report: SyncReport = { chain: chain.name, checked: 0, upToDate: 0, replicated: 0, referrersCopied: 0, skippedBlocked: 0, queued: [], failed: [], ms: 0 };
  const catalog = (await getJson<{ repositories: string[] }>(opts.source, '/v2/_catalog?n=10000'))?.repositories ?? [];
  for (const repo of catalog.filter((r) => matchesAny(chain.repositories, r))) {
    const tags = ((await getJson<{ tags: string[] | null }>(opts.source, `/v2/${repo}/tags/list?n=10000`))?.tags ?? []).filter((t) => matchesAny(chain.tags, t));
    for (const tag of tags) {
      opts.signal?.throwIfAborted();
      const digest = await headDigest(opts.source, repo, tag);
      if (!digest) continue;
      const targets = chain.replicate.targets.filter((t) => targetApplies(t, repo, tag));
      if (targets.length === 0) continue;
      const verdict = digest === 'denied' ? ({ status: 'blocked' } as const) : await opts.clear(repo, digest as Digest, tag);
      if (verdict.status === 'blocked') {
        report.skippedBlocked += 1;
        continue;
      }
      if (verdict.status === 'queued') {
        report.queued.push({ image: `${repo}:${tag}`, run: verdict.runId, started: verdict.started });
        opts.log?.(`sync ${chain.name}: ${repo}:${tag} not cleared by the chain yet; run ${verdict.runId} ${verdict.started ? 'started' : 'under way'}`);
        continue;
      }
      for (const target of targets) {
        report.checked += 1;
        const replicator = opts.pool.for(target);
        const targetRepo = rewriteName(target, repo);
        try {
          if ((await headDigest(replicator.target, targetRepo, tag)) === digest) {
            // Same image, but a signature or SBOM may have been added since: compare referrer sets.
            const refs = await replicator.replicateReferrers({ sourceRepo: repo, reference: digest, targetRepo, signal: opts.signal, onLog: opts.log });
            report.referrersCopied += refs.referrers;
            report.upToDate += 1;
            continue;
          }
          await replicator.replicate({ sourceRepo: repo, reference: digest as Digest, targetRepo, tags: [tag], signal: opts.signal });
          report.replicated += 1;
          opts.log?.(`sync ${chain.name}: ${repo}:${tag} → ${target.name}/${targetRepo}`);
        } catch (err) {
          report.failed.push({ image: `${repo}:${tag}`, target: target.name, error: (err as Error).message });
        }
      }
    }
  }
  report.ms = Date.now() - started;
  return report;
}
