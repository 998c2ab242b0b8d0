// Chain notifications: progress events (run started, stage finished) go out in the background as
// they happen; the final event (blocked / succeeded / failed) is the notify stage, which the run
// waits for and which runs whatever happened before it.
import type { Logger } from 'pino';
import type { ChainEngine } from '../chain/engine.js';
import type { ChainStore } from '../chain/store.js';
import type { StageRunner } from '../chain/stage.js';
import { chainEvent, deliver, type ChainEventType } from './webhook.js';

export const EVENT_SOURCE = '/shoal/chains';

export function notifyStage(): StageRunner {
  return {
    async run(ctx) {
      const hooks = ctx.chain.notify.webhooks;
      if (hooks.length === 0) return { status: 'skipped', reason: 'no webhooks configured' };
      const outcome = ctx.outcome ?? { status: 'succeeded' as const };
      const type: ChainEventType = `chain.run.${outcome.status}`;
      const run = { ...ctx.run, status: outcome.status, ...(outcome.reason ? { reason: outcome.reason } : {}) };
      const delivered = (ctx.attemptState.delivered ??= new Set<string>()) as Set<string>;
      const event = chainEvent(type, run, EVENT_SOURCE);
      const failures: string[] = [];
      for (const hook of hooks) {
        if (delivered.has(hook.url)) continue;
        try {
          // One attempt here: the engine retries the stage with the chain's back-off.
          await deliver(hook, event, { attempts: 1, backoffMs: 0, signal: ctx.signal });
          delivered.add(hook.url);
          ctx.log(`${type} delivered to ${hook.url}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      if (failures.length > 0) throw new Error(failures.join('; '));
      return { status: 'succeeded', output: { delivered: [...delivered], event: type } };
    },
  };
}

/** Sends run-started and stage-finished events for chains that have webhooks and notify on. */
export function notifyProgress(engine: ChainEngine, store: ChainStore, log: Logger): void {
  const send = async (type: ChainEventType, run: Parameters<typeof chainEvent>[1], stage?: Parameters<typeof chainEvent>[3]) => {
    const chain = await store.getChain(run.chain);
    if (!chain?.notify.enabled) return;
    const event = chainEvent(type, run, EVENT_SOURCE, stage);
    for (const hook of chain.notify.webhooks) {
      void deliver(hook, event, { attempts: chain.notify.retries + 1, backoffMs: chain.notify.backoffMs }).catch((err) => log.warn({ err: (err as Error).message, run: run.id }, 'webhook delivery failed'));
    }
  };
  const started = new Set<string>();
  engine.events.on('run', (run) => {
    if (run.status === 'running' && !started.has(run.id)) {
      started.add(run.id);
      void send('chain.run.started', run);
    }
    if (run.status !== 'running' && run.status !== 'queued') started.delete(run.id);
  });
  engine.events.on('stage.finished', (run, stage) => {
    if (stage.name !== 'notify' && stage.status !== 'skipped') void send('chain.stage.finished', run, stage);
  });
}
