// What a stage is to the engine: a function of the run that succeeds, blocks the chain, or throws
// (to be retried). Stages get an AbortSignal for their timeout and must stop when it fires.
import type { ChainDefinition, Run, StageName } from './model.js';

export interface StageContext {
  run: Readonly<Run>;
  chain: ChainDefinition;
  signal: AbortSignal;
  attempt: number;
  log(message: string): void;
  progress(done: number, total: number, unit: string): void;
  /** The recorded output of an earlier stage of this run (also after a restart). */
  outputOf<T>(stage: StageName): T | undefined;
  /** Survives retries of this stage within one process (e.g. which webhooks already got the event). */
  attemptState: Record<string, unknown>;
  /** The outcome the run will end with, known to the notify stage (it runs last, whatever happened). */
  outcome?: { status: 'succeeded' | 'failed' | 'blocked'; reason?: string };
}

export type StageOutcome =
  | { status: 'succeeded'; output?: unknown }
  | { status: 'skipped'; reason: string }
  | { status: 'blocked'; reason: string; output?: unknown };

export interface StageRunner {
  run(ctx: StageContext): Promise<StageOutcome>;
}

export type StageRunners = Partial<Record<StageName, StageRunner>>;

/** Exponential back-off with ±20 % jitter, capped at a minute. */
export function backoffDelay(firstMs: number, attempt: number): number {
  const base = Math.min(60_000, firstMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Resolves after ms, or rejects when the signal aborts first. */
export function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
