// Prometheus metrics of the delivery chain, registered on the registry process's registry and
// fed from the engine's events (runs by outcome, stage durations, bytes replicated, gate refusals).
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ChainEngine } from './engine.js';
import type { ReplicateOutput } from '../replicate/stage.js';

export interface ChainMetrics {
  gateRefusals: Counter;
}

export function registerChainMetrics(registry: Registry, engine: ChainEngine): ChainMetrics {
  const runs = new Counter({ name: 'shoal_chain_runs_total', help: 'Finished chain runs by chain and outcome', labelNames: ['chain', 'status'], registers: [registry] });
  const stages = new Histogram({
    name: 'shoal_chain_stage_seconds',
    help: 'Time a chain stage took, retries included, by stage and outcome',
    labelNames: ['stage', 'status'],
    buckets: [0.05, 0.25, 1, 5, 15, 60, 300, 1800, 7200],
    registers: [registry],
  });
  const replicated = new Counter({ name: 'shoal_replication_bytes_sent_total', help: 'Blob bytes the replicate stage sent to targets', labelNames: ['target'], registers: [registry] });
  const gateRefusals = new Counter({ name: 'shoal_gate_pull_refusals_total', help: 'Manifest pulls refused because the image is blocked by a gate policy', registers: [registry] });
  engine.events.on('stage.finished', (_run, stage) => {
    if (stage.status === 'skipped' || stage.startedAt === undefined || stage.finishedAt === undefined) return;
    stages.observe({ stage: stage.name, status: stage.status }, (stage.finishedAt - stage.startedAt) / 1000);
    if (stage.name === 'replicate' && stage.status === 'succeeded') {
      for (const t of (stage.output as ReplicateOutput | undefined)?.targets ?? []) replicated.inc({ target: t.name }, t.bytesSent);
    }
  });
  const counted = new Set<string>();
  engine.events.on('run', (run) => {
    if ((run.status === 'succeeded' || run.status === 'failed' || run.status === 'blocked') && !counted.has(run.id)) {
      counted.add(run.id);
      if (counted.size > 10_000) counted.clear();
      runs.inc({ chain: run.chain, status: run.status });
    }
  });
  return { gateRefusals };
}
