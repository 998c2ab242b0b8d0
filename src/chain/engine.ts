// The delivery-chain engine: turns pushes (and manual requests) into runs, executes their stages in
// order (scan → gate → replicate → preheat → notify) with retries, back-off and timeouts, persists
// every transition, and resumes runs a crash interrupted.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { RegistryEventMap } from '../registry/events.js';
import { chainMatchesPush, STAGE_NAMES, type ChainDefinition, type LogLine, type Run, type StageName, type StageRun, type StageControl } from './model.js';
import type { ChainStore } from './store.js';
import { backoffDelay, sleepUnlessAborted, type StageContext, type StageOutcome, type StageRunners } from './stage.js';

export interface ChainEngineEvents {
  /** Any change of a run (status, stage, progress). */
  run: [Run];
  log: [LogLine];
  'stage.finished': [Run, StageRun];
}

export interface ChainEngineOptions {
  store: ChainStore;
  stages: StageRunners;
  log: Logger;
  /** Runs executed at once; more wait queued. */
  maxConcurrentRuns?: number;
  /** Persist progress at most this often (every change still reaches in-memory listeners). */
  progressPersistMs?: number;
}

const FINAL_STAGE: StageName = 'notify';

export class ChainEngine {
  readonly events = new EventEmitter<ChainEngineEvents>();
  private readonly store: ChainStore;
  private readonly log: Logger;
  private readonly maxConcurrent: number;
  private readonly queue: Run[] = [];
  private readonly active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private stopped = false;

  constructor(private readonly opts: ChainEngineOptions) {
    this.store = opts.store;
    this.log = opts.log;
    this.maxConcurrent = opts.maxConcurrentRuns ?? 2;
  }

  /** Resumes runs a previous process left unfinished. */
  async start(): Promise<void> {
    for (const run of await this.store.unfinishedRuns()) {
      await this.appendLog(run, 'run', `resuming after a restart (was ${run.status})`);
      this.enqueue(run);
    }
  }

  /** Listener for RegistryService.events 'manifest.pushed'. */
  onManifestPushed = (ev: RegistryEventMap['manifest.pushed'][0]): void => {
    if (ev.subject || ev.tags.length === 0) return; // referrers (signatures, our own SBOMs) and digest pushes don't trigger
    void this.triggerForPush(ev.repo, ev.digest, ev.tags).catch((err) => this.log.error({ err, repo: ev.repo }, 'chain trigger failed'));
  };

  private async triggerForPush(repo: string, digest: Digest, tags: string[]): Promise<void> {
    for (const chain of await this.store.listChains()) {
      const tag = chainMatchesPush(chain, repo, tags);
      if (tag !== undefined) await this.trigger(chain, repo, digest, tag, 'push');
    }
  }

  /** Creates and queues a run of `chain` for an image. */
  async trigger(chain: ChainDefinition, repo: string, digest: Digest, tag: string | undefined, trigger: Run['trigger']): Promise<Run> {
    const run: Run = {
      id: randomUUID(),
      chain: chain.name,
      repo,
      digest,
      ...(tag ? { tag } : {}),
      trigger,
      status: 'queued',
      createdAt: Date.now(),
      stages: STAGE_NAMES.map((name) => ({ name, status: 'pending', attempts: 0 })),
    };
    await this.store.createRun(run);
    await this.appendLog(run, 'run', `queued by ${trigger} of ${repo}${tag ? `:${tag}` : ''}@${digest}`);
    this.enqueue(run);
    return run;
  }

  /** Stops taking runs and aborts those in progress; they stay "running" in the store and resume at the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    for (const a of this.active.values()) a.abort.abort(new Error('engine stopping'));
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /** Resolves when the run has finished (or the engine stopped). */
  async waitFor(runId: string, timeoutMs = 60_000): Promise<Run> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.store.getRun(runId);
      if (!run) throw new Error(`no run ${runId}`);
      if (run.status !== 'queued' && run.status !== 'running') return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private enqueue(run: Run): void {
    if (this.stopped) return;
    this.queue.push(run);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.active.size < this.maxConcurrent && this.queue.length > 0) {
      const run = this.queue.shift()!;
      const abort = new AbortController();
      const done = this.execute(run, abort.signal)
        .catch((err) => this.log.error({ err, run: run.id }, 'chain run crashed'))
        .finally(() => {
          this.active.delete(run.id);
          this.pump();
        });
      this.active.set(run.id, { abort, done });
    }
  }

  private async execute(run: Run, engineSignal: AbortSignal): Promise<void> {
    const chain = await this.store.getChain(run.chain);
    if (!chain) {
      await this.finish(run, 'failed', `chain "${run.chain}" was deleted`);
      return;
    }
    run.status = 'running';
    run.startedAt ??= Date.now();
    await this.save(run);
    this.events.emit('run', structuredClone(run));

    let outcome: { status: 'succeeded' | 'failed' | 'blocked'; reason?: string } = { status: 'succeeded' };
    for (const stage of run.stages) {
      if (engineSignal.aborted) return; // left "running": resumed at the next start
      if (stage.status === 'succeeded' || stage.status === 'skipped' || stage.status === 'blocked') {
        if (stage.status === 'blocked') outcome = { status: 'blocked', reason: run.reason };
        continue;
      }
      const control = chain[stage.name] as StageControl;
      const runner = this.opts.stages[stage.name];
      if (!control.enabled || !runner) {
        await this.settleStage(run, stage, { status: 'skipped', reason: control.enabled ? 'not available in this process' : 'switched off' });
        continue;
      }
      if (outcome.status !== 'succeeded' && stage.name !== FINAL_STAGE) {
        await this.settleStage(run, stage, { status: 'skipped', reason: `run ${outcome.status}` });
        continue;
      }
      const result = await this.runStage(run, chain, stage, control, engineSignal, outcome);
      if (engineSignal.aborted) return;
      if (result.status === 'blocked') {
        outcome = { status: 'blocked', reason: result.reason };
        run.reason = result.reason;
      } else if (result.status === 'failed') {
        if (stage.name === FINAL_STAGE && outcome.status !== 'succeeded') continue; // keep the earlier, more telling reason
        outcome = { status: 'failed', reason: `${stage.name} failed: ${result.error}` };
      }
    }
    await this.finish(run, outcome.status, outcome.reason);
  }

  private async runStage(
    run: Run,
    chain: ChainDefinition,
    stage: StageRun,
    control: StageControl,
    engineSignal: AbortSignal,
    outcome: StageContext['outcome'],
  ): Promise<{ status: 'succeeded' | 'blocked'; reason: string } | { status: 'failed'; error: string }> {
    const runner = this.opts.stages[stage.name]!;
    stage.status = 'running';
    stage.startedAt = Date.now();
    delete stage.error;
    await this.save(run);
    this.events.emit('run', structuredClone(run));
    const attemptState: Record<string, unknown> = {};
    let lastPersist = 0;
    const maxAttempts = control.retries + 1;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      stage.attempts += 1;
      const timeout = AbortSignal.timeout(control.timeoutMs);
      const signal = AbortSignal.any([timeout, engineSignal]);
      const ctx: StageContext = {
        run,
        chain,
        signal,
        attempt,
        attemptState,
        outcome,
        // A stage that outlived its timeout may still log; never let that become an unhandled rejection.
        log: (message) => void this.appendLog(run, stage.name, message).catch((err) => this.log.warn({ err, run: run.id }, 'chain log line lost')),
        progress: (done, total, unit) => {
          stage.progress = { done, total, unit };
          this.events.emit('run', structuredClone(run));
          const now = Date.now();
          if (now - lastPersist >= (this.opts.progressPersistMs ?? 1_000)) {
            lastPersist = now;
            void this.save(run).catch((err) => this.log.warn({ err, run: run.id }, 'chain progress not saved'));
          }
        },
        outputOf: <T>(name: StageName) => run.stages.find((s) => s.name === name)?.output as T | undefined,
      };
      try {
        const result = await raceAbort(runner.run(ctx), signal);
        await this.settleStage(run, stage, result);
        return result.status === 'blocked' ? { status: 'blocked', reason: result.reason } : { status: 'succeeded', reason: '' };
      } catch (err) {
        if (engineSignal.aborted) return { status: 'failed', error: 'engine stopping' };
        const message = timeout.aborted ? `timed out after ${control.timeoutMs} ms` : (err as Error).message;
        stage.error = message;
        if (attempt < maxAttempts) {
          const delay = backoffDelay(control.backoffMs, attempt);
          await this.appendLog(run, stage.name, `attempt ${attempt} of ${maxAttempts} failed: ${message}; retrying in ${delay} ms`);
          await this.save(run);
          try {
            await sleepUnlessAborted(delay, engineSignal);
          } catch {
            return { status: 'failed', error: 'engine stopping' };
          }
        } else {
          await this.appendLog(run, stage.name, `failed after ${attempt} attempt(s): ${message}`);
          stage.status = 'failed';
          stage.finishedAt = Date.now();
          await this.save(run);
          this.events.emit('stage.finished', structuredClone(run), structuredClone(stage));
          this.events.emit('run', structuredClone(run));
          return { status: 'failed', error: message };
        }
      }
    }
    return { status: 'failed', error: 'no attempt made' };
  }

  private async settleStage(run: Run, stage: StageRun, result: StageOutcome): Promise<void> {
    stage.status = result.status;
    stage.finishedAt = Date.now();
    stage.startedAt ??= stage.finishedAt;
    if (result.status !== 'skipped' && result.output !== undefined) stage.output = result.output;
    if (result.status === 'skipped') await this.appendLog(run, stage.name, `skipped: ${result.reason}`);
    else if (result.status === 'blocked') await this.appendLog(run, stage.name, `blocked: ${result.reason}`);
    else await this.appendLog(run, stage.name, `succeeded in ${stage.finishedAt - stage.startedAt} ms`);
    await this.save(run);
    this.events.emit('stage.finished', structuredClone(run), structuredClone(stage));
    this.events.emit('run', structuredClone(run));
  }

  private async finish(run: Run, status: Run['status'], reason?: string): Promise<void> {
    run.status = status;
    if (reason) run.reason = reason;
    run.finishedAt = Date.now();
    await this.save(run);
    await this.appendLog(run, 'run', `${status}${reason ? `: ${reason}` : ''} (${run.finishedAt - (run.startedAt ?? run.createdAt)} ms)`);
    this.events.emit('run', structuredClone(run));
  }

  private async save(run: Run): Promise<void> {
    await this.store.updateRun(run);
  }

  private async appendLog(run: Run, stage: StageName | 'run', message: string): Promise<void> {
    const line = await this.store.appendLog(run.id, stage, message, Date.now());
    this.log.info({ run: run.id, chain: run.chain, stage }, message);
    this.events.emit('log', line);
  }
}

/** Rejects as soon as the signal aborts, even if the stage ignores it. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}
