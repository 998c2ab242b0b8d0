// The scan and preheat stages (gate: gate.ts; replicate: src/replicate; notify: src/notify).
import { request } from 'undici';
import type { Digest } from '../oci/digest.js';
import type { Finding, Scanner } from '../scan/scanner.js';
import type { PreheatStatus } from '../p2p/protocol.js';
import { sleepUnlessAborted, type StageRunner } from './stage.js';

export interface ScanOutput {
  /** Manifests the findings cover (the pushed one, or its platform manifests). */
  manifests: Digest[];
  packages: number;
  findings: Finding[];
  sbomDigest?: Digest;
  /** Layer bytes read and time taken (for the scan rate), when the scanner reports them. */
  stats?: { layers: number; layersCached: number; bytesRead: number; tarBytes: number; durationMs: number };
}

export function scanStage(scanner: Scanner): StageRunner {
  return {
    async run(ctx) {
      ctx.log(`scanning ${ctx.run.repo}@${ctx.run.digest}`);
      const report = await scanner.scanImage(ctx.run.repo, ctx.run.digest);
      const bySeverity = new Map<string, number>();
      for (const f of report.findings) bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + 1);
      const counts = [...bySeverity].map(([s, n]) => `${n} ${s}`).join(', ') || 'none';
      ctx.log(`${report.packages.length} package(s), findings: ${counts}${report.sbomDigest ? `; SBOM ${report.sbomDigest}` : ''}`);
      for (const note of report.notes ?? []) ctx.log(`note: ${note}`);
      const output: ScanOutput = {
        manifests: [...new Set([ctx.run.digest, report.manifestDigest, ...(report.platforms ?? []).map((p) => p.manifestDigest)])],
        packages: report.packages.length,
        findings: report.findings,
        ...(report.sbomDigest ? { sbomDigest: report.sbomDigest } : {}),
        ...(report.stats
          ? { stats: { layers: report.stats.layers, layersCached: report.stats.layersCached, bytesRead: report.stats.bytesRead, tarBytes: report.stats.tarBytes, durationMs: report.stats.durationMs } }
          : {}),
      };
      return { status: 'succeeded', output };
    },
  };
}

export interface PreheatOutput {
  clusters: Array<{ name: string; job: string; blobs: number; ms: number }>;
}

/**
 * Asks each cluster's scheduler to preheat the image into its seeds (or all agents) and waits until
 * every blob is reported warm. `registryUrl` is this registry's own address, the default source.
 */
export function preheatStage(opts: { pollMs?: number } = {}): StageRunner {
  return {
    async run(ctx) {
      const clusters = ctx.chain.preheat.clusters;
      if (clusters.length === 0) return { status: 'skipped', reason: 'no clusters configured' };
      const done = (ctx.attemptState.done ??= {}) as Record<string, PreheatOutput['clusters'][number]>;
      for (const c of clusters) {
        if (done[c.name]) continue;
        const started = Date.now();
        const image = `${c.repository.replaceAll('{repo}', ctx.run.repo)}@${ctx.run.digest}`;
        const headers: Record<string, string> = { 'content-type': 'application/json', ...(c.clusterToken ? { authorization: `Bearer ${c.clusterToken}` } : {}) };
        const res = await request(`${c.scheduler.replace(/\/+$/, '')}/scheduler/v1/preheat`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ image, scope: c.scope, ...(c.registry ? { registry: c.registry } : {}) }),
          signal: ctx.signal,
        });
        const job = (await res.body.json()) as PreheatStatus & { error?: string };
        if (res.statusCode !== 202) throw new Error(`scheduler of cluster ${c.name} refused preheat of ${image}: ${res.statusCode} ${job.error ?? ''}`);
        ctx.log(`cluster ${c.name}: preheat job ${job.id} for ${image} (scope ${c.scope})`);
        for (;;) {
          await sleepUnlessAborted(opts.pollMs ?? 250, ctx.signal);
          const r = await request(`${c.scheduler.replace(/\/+$/, '')}/scheduler/v1/preheat/${job.id}`, { headers, signal: ctx.signal });
          const status = (await r.body.json()) as PreheatStatus;
          if (r.statusCode !== 200) throw new Error(`preheat job ${job.id} on ${c.name}: ${r.statusCode}`);
          const total = status.blobs.reduce((a, b) => a + b.size, 0);
          const warm = status.blobs.filter((b) => b.seedsDone > 0 && b.agentsDone >= b.agentsTotal).reduce((a, b) => a + b.size, 0);
          ctx.progress(warm, total, 'bytes');
          if (status.state === 'failed') throw new Error(`preheat on ${c.name} failed: ${status.error ?? 'unknown'}`);
          if (status.state === 'done') {
            done[c.name] = { name: c.name, job: job.id, blobs: status.blobs.length, ms: Date.now() - started };
            ctx.log(`cluster ${c.name}: ${status.blobs.length} blob(s) warm in ${Date.now() - started} ms`);
            break;
          }
        }
      }
      const output: PreheatOutput = { clusters: Object.values(done) };
      return { status: 'succeeded', output };
    },
  };
}
