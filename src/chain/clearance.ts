// Whether a chain has cleared an image for replication. The full sync asks this for every tag it
// would copy: without it, a sync would ship images pushed before the chain existed, or whose run
// is still scanning, past the scan and the gate.
import type { Digest } from '../oci/digest.js';
import { isFinished, type ChainDefinition } from './model.js';
import type { ChainEngine } from './engine.js';
import type { GateIndex } from './gate.js';
import type { ChainStore } from './store.js';

export type Clearance =
  | { status: 'passed'; why: string }
  | { status: 'blocked' }
  /** A run of the chain for this image is queued or running (`started`: this call triggered it). */
  | { status: 'queued'; runId: string; started: boolean };

export interface ClearanceDeps {
  store: ChainStore;
  engine: Pick<ChainEngine, 'trigger'>;
  gate: Pick<GateIndex, 'lookup'>;
}

/**
 * Decides from the chain's own runs: the newest run whose gate settled says passed or blocked; a
 * run under way means "wait"; anything else (no run, or runs that failed before the gate
 * decided) starts a run, which replicates the image itself once the gate passes.
 */
export async function clearance(deps: ClearanceDeps, chain: ChainDefinition, repo: string, digest: Digest, tag: string | undefined): Promise<Clearance> {
  if (deps.gate.lookup(repo, digest)) return { status: 'blocked' };
  // Switched off in the definition is the operator's explicit choice: nothing to wait for.
  if (!chain.gate.enabled) return { status: 'passed', why: 'gate switched off' };
  const runs = await deps.store.listRuns({ chain: chain.name, repo, digest, limit: 20 });
  const pending = runs.find((r) => !isFinished(r.status));
  if (pending) return { status: 'queued', runId: pending.id, started: false };
  for (const run of runs) {
    const gate = run.stages.find((s) => s.name === 'gate')?.status;
    if (gate === 'succeeded') return { status: 'passed', why: `run ${run.id}` };
    // Blocked by the run but no longer in the gate index: an administrator lifted the block.
    if (gate === 'blocked') return { status: 'passed', why: `block of run ${run.id} lifted` };
  }
  const run = await deps.engine.trigger(chain, repo, digest, tag, 'sync');
  return { status: 'queued', runId: run.id, started: true };
}
