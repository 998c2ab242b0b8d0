// What a run leaves behind: <out>/<scenario>.json (every variant's figures and CDF),
// <out>/<scenario>.cdf.svg (the chart), a table for people on stdout, and one JSON line for
// machines (the headline variant's figures at top level, every variant under `variants`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { VariantResult } from './run.js';
import type { Scenario } from './scenario.js';
import { cdfSvg } from './svg.js';

export interface ScenarioResults {
  scenario: string;
  file: string;
  description: string;
  generated_at: string;
  host: { cpus: number; cpu_model: string; node: string };
  params: Record<string, unknown>;
  compare?: Record<string, unknown>;
  results: VariantResult[];
  total_wall_s: number;
}

export function collect(s: Scenario, results: VariantResult[], totalWallS: number): ScenarioResults {
  return {
    scenario: s.name,
    file: s.file,
    description: s.description,
    generated_at: new Date().toISOString(),
    host: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version },
    params: {
      nodes: s.nodes,
      layers: s.layers,
      piece_size: results[0]?.piece_size,
      nic_up_bps: s.nicUpBps,
      nic_down_bps: s.nicDownBps,
      seeds_per_dc: s.seeds.perDc,
      seed_up_bps: s.seeds.upBps,
      registry_egress_bps: s.registryEgressBps,
      topology: s.topology,
      network: s.network,
      layer_concurrency: s.layerConcurrency,
      prefetch_layers: s.prefetchLayers,
      start_spread_ms: s.startSpreadMs,
      scheduler_overrides: s.scheduler,
      downloader_overrides: s.downloader,
    },
    ...(s.compare ? { compare: s.compare } : {}),
    results,
    total_wall_s: totalWallS,
  };
}

export function writeResults(out: string, r: ScenarioResults): { json: string; svg: string } {
  mkdirSync(out, { recursive: true });
  const json = join(out, `${r.scenario}.json`);
  writeFileSync(json, `${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1)}\n`);
  const svg = join(out, `${r.scenario}.cdf.svg`);
  const wide = r.results.some((x) => x.mode === 'direct') && r.results.some((x) => x.mode !== 'direct');
  writeFileSync(svg, cdfSvg(`${r.scenario}: completion time CDF (${r.results[0]?.nodes.toLocaleString('en-US')} agents)`, r.results.map((x) => ({ label: `${x.variant} (${x.engine})`, points: x.cdf, bound_s: x.bound_s })), { logX: wide }));
  return { json, svg };
}

/** The variant the one-line JSON leads with: plain p2p-preheat when there is one. */
export function headline(results: VariantResult[]): VariantResult {
  return results.find((r) => r.mode === 'p2p-preheat' && r.killed === 0 && r.variant === 'p2p-preheat') ?? results.find((r) => r.mode === 'p2p-preheat') ?? results[0]!;
}

export function jsonLine(r: ScenarioResults, files: { json: string; svg: string }): string {
  const pick = (x: VariantResult) => ({
    variant: x.variant,
    mode: x.mode,
    engine: x.engine,
    nodes: x.nodes,
    completed: x.completed,
    expected: x.expected,
    p50_s: n(x.p50_s),
    p99_s: n(x.p99_s),
    max_s: n(x.max_s),
    ...(x.first_byte_p50_s !== undefined ? { first_byte_p50_s: n(x.first_byte_p50_s) } : {}),
    bound_s: n(x.bound_s),
    ratio_to_bound: n(x.ratio_to_bound),
    origin_ratio: n(x.origin_ratio),
    origin_ratio_rollout: n(x.origin_ratio_rollout),
    scheduler_peak_msgs_per_s: x.scheduler_peak_msgs_per_s,
    scheduler_cpu_share: n(x.scheduler_cpu_share, 6),
    scheduler_peak_second_cpu_share: n(x.scheduler?.peakSecondCpuShare ?? 0, 6),
    wall_s: n(x.wall_s),
  });
  const h = headline(r.results);
  return JSON.stringify({ scenario: r.scenario, ...pick(h), total_wall_s: n(r.total_wall_s), results_file: files.json, chart: files.svg, variants: r.results.map(pick) });
}

function n(x: number, d = 4): number | null {
  if (!Number.isFinite(x)) return null;
  const m = 10 ** d;
  return Math.round(x * m) / m;
}

export function summaryTable(r: ScenarioResults): string {
  const rows = r.results.map((x) => [
    x.variant,
    x.engine,
    `${x.completed}/${x.expected}${x.killed ? ` (${x.killed} killed)` : ''}`,
    secs(x.p50_s),
    secs(x.p99_s),
    secs(x.max_s),
    secs(x.bound_s),
    Number.isFinite(x.ratio_to_bound) ? `${x.ratio_to_bound.toFixed(2)}x` : '-',
    `${x.origin_ratio.toFixed(x.origin_ratio < 10 ? 2 : 0)}x`,
    x.scheduler ? `${x.scheduler_peak_msgs_per_s}` : '-',
    x.scheduler ? `${(x.scheduler_cpu_share * 100).toFixed(2)}% / ${(x.scheduler.peakSecondCpuShare * 100).toFixed(1)}%` : '-',
    `${x.wall_s.toFixed(1)} s`,
  ]);
  const head = ['variant', 'engine', 'done', 'p50', 'p99', 'max', 'K-R bound', 'max/bound', 'origin/F', 'sched msg/s peak', 'sched CPU mean / peak s', 'wall'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const lines = [`${r.scenario}: ${r.results[0]?.nodes.toLocaleString('en-US')} agents, ${fmtBytes(r.results[0]?.image_bytes ?? 0)} in ${r.results[0]?.layers} layers, ${r.results[0]?.pieces_per_node} pieces each`, line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  return lines.join('\n');
}

export function secs(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? `${x.toFixed(0)} s` : `${x.toFixed(2)} s`;
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${+n.toFixed(2)} ${u[i]}`;
}
