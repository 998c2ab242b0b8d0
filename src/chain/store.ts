// Persistence seam for chains, runs (with every stage's status and log) and gate decisions.
// Small and async so a PostgreSQL implementation drops in; test/unit/chain/chain-store.suite.ts
// is the contract every implementation passes.
import type { Digest } from '../oci/digest.js';
import type { BlockedImage, ChainDefinition, GatePolicy, LogLine, Run, RunStatus, StageName } from './model.js';

export interface RunQuery {
  chain?: string;
  repo?: string;
  digest?: string;
  status?: RunStatus;
  /** Newest first; default 50. */
  limit?: number;
}

export interface ChainStore {
  putChain(chain: ChainDefinition): Promise<void>;
  getChain(name: string): Promise<ChainDefinition | null>;
  listChains(): Promise<ChainDefinition[]>;
  deleteChain(name: string): Promise<boolean>;

  createRun(run: Run): Promise<void>;
  /** Replaces the run's status, reason, times and stages. */
  updateRun(run: Run): Promise<void>;
  getRun(id: string): Promise<Run | null>;
  listRuns(query?: RunQuery): Promise<Run[]>;
  /** Runs a crash left queued or running, oldest first: the engine resumes them at start-up. */
  unfinishedRuns(): Promise<Run[]>;

  appendLog(runId: string, stage: StageName | 'run', message: string, at: number): Promise<LogLine>;
  /** Log lines with seq > afterSeq, in order. */
  logs(runId: string, afterSeq?: number): Promise<LogLine[]>;

  putGatePolicy(policy: GatePolicy): Promise<void>;
  listGatePolicies(): Promise<GatePolicy[]>;
  deleteGatePolicy(namespace: string): Promise<boolean>;

  /** Records a gate decision; `null` lifts it. */
  setBlocked(repo: string, digest: Digest, blocked: BlockedImage | null): Promise<void>;
  listBlocked(): Promise<BlockedImage[]>;

  close(): Promise<void>;
}

/** The policy for a repository: the longest namespace that is a prefix of it at a "/" boundary. */
export function policyFor(policies: readonly GatePolicy[], repo: string): GatePolicy | undefined {
  let best: GatePolicy | undefined;
  for (const p of policies) {
    const applies = p.namespace === '' || repo === p.namespace || repo.startsWith(`${p.namespace}/`);
    if (applies && (!best || p.namespace.length > best.namespace.length)) best = p;
  }
  return best;
}
