// REPORT.md's calibration section: the simulated calibration fleet next to what bench/p2p
// measured on the same parameters, per variant (p2p with both engines, direct), with the
// difference in percent and the 15 % verdict. Numbers only from the files.
import type { ScenarioResults } from './results.js';
import { secs } from './results.js';
import type { VariantResult } from './run.js';

/** The scenario simulated for the comparison (its parameters must match the measured run). */
export const CALIBRATION = 'calibration-20';

/** bench/p2p's last JSON line (only these fields are read), or a hand-written {max_s, p50_s, p99_s}. */
export interface Measured {
  max_s: number;
  p50_s: number;
  p99_s: number;
  source?: string;
  peers?: number;
  blob_mib?: number;
  cap_mbit?: number;
  seed_mbit?: number;
  registry_mbit?: number;
  shaping?: string;
  advertise_caps?: boolean;
  origin_ratio?: number;
  agent_fallbacks?: number;
  direct_max_s?: number | null;
  direct_p50_s?: number | null;
  bound_s?: number;
  cpu_idle_pct?: number | null;
  cpu_bound?: boolean | null;
  foreign_cpu_s?: number | null;
  agent_rss_mb?: number | null;
  git_head?: string;
  /** Hand-written findings about the comparison (why the figures differ), shown under the table. */
  notes?: string[];
  /** Several bench runs of the same command: compared by their mean (p50_s / max_s above are one of them). */
  runs?: Array<{ p50_s: number; max_s: number; ttfb_p50_s?: number | null; git_head?: string }>;
  /** bench/p2p's clients' first body byte, p50 (curl's time_starttransfer). */
  ttfb_p50_s?: number | null;
}

const TARGET = 0.15;

function pct(sim: number, measured: number | null | undefined): string {
  if (!measured || !Number.isFinite(sim)) return '–';
  const d = (sim - measured) / measured;
  return `${d >= 0 ? '+' : ''}${(d * 100).toFixed(1)} %${Math.abs(d) <= TARGET ? '' : ' ✗'}`;
}

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

export function calibrationSection(r: ScenarioResults | undefined, m: Measured | null, file: string): string[] {
  const out = ['## Calibration against the real multi-process benchmark (bench/p2p)', ''];
  out.push(
    `\`bench/p2p/run.sh\` runs a registry, a scheduler, one seed and N agents as separate processes, each in its own network namespace with tc tbf caps, every agent pulling one blob at the same instant through a cold seed, then the same agents straight from the registry. \`scenarios/${CALIBRATION}.yaml\` is that fleet with the exact parameters of the measured run (the command is at the top of the file). The caps are small on purpose: the machine has 2 cores shared with other work, and a run whose agents need more CPU than that measures the machine, not the protocol (the earlier 50-agent, 20 Mbit/s, 512 MiB run had 0 % CPU idle and measured 2.69× the bound).`,
  );
  out.push('');
  if (!r) return [...out, `_\`scenarios/${CALIBRATION}.yaml\` not simulated yet._`, ''];
  // The real-engine p2p run may be drawn several times (variants differing only in seed): compare
  // their mean, show their range. `p2p` is the first of them, for the fleet's parameters.
  const draws = r.results.filter((x) => x.mode === 'p2p' && x.engine === 'downloader' && !x.killed);
  const p2pDraws = draws.length > 0 ? draws : r.results.filter((x) => x.mode === 'p2p').slice(0, 1);
  const p2p = p2pDraws[0];
  const thins = r.results.filter((x) => x.mode === 'p2p' && x.engine === 'thin' && !x.killed);
  const direct = r.results.find((x) => x.mode === 'direct');
  if (!m) {
    out.push(`_No measured figures yet: save the bench's last JSON line to \`${file}\` (\`… npm run bench:p2p | tail -1 > ${file}\`) and rerun \`shoal sim report\`._`, '');
    return out;
  }
  const rows: string[][] = [];
  const fig = (xs: Array<number | null | undefined>): Fig | null => (xs.length > 0 && xs.every((x) => !!x) ? spread(xs as number[]) : null);
  const row = (label: string, sim: SimFigs | null, mp50: Fig | null, mmax: Fig | null) => {
    if (!sim) return;
    rows.push([label, sim.p50.text, mp50?.text ?? 'n/a', pct(sim.p50.mean, mp50?.mean), sim.max.text, mmax?.text ?? 'n/a', pct(sim.max.mean, mmax?.mean)]);
  };
  const runs = m.runs && m.runs.length > 0 ? m.runs : [{ p50_s: m.p50_s, max_s: m.max_s, ttfb_p50_s: m.ttfb_p50_s }];
  const measuredP50 = fig(runs.map((x) => x.p50_s));
  const measuredMax = fig(runs.map((x) => x.max_s));
  const p2pFigs = simFigs(p2pDraws);
  row('p2p (real TaskDownloader engine)', p2pFigs, measuredP50, measuredMax);
  row('p2p (thin engine)', simFigs(thins), measuredP50, measuredMax);
  row('direct from the registry', simFigs(direct ? [direct] : []), fig([m.direct_p50_s]), fig([m.direct_max_s]));
  out.push(...table(['variant', 'simulated p50', 'measured p50', 'difference', 'simulated max', 'measured max', 'difference'], rows));
  out.push('');
  const extra: string[] = [];
  if (p2p && m.origin_ratio !== undefined) extra.push(`registry egress / blob: simulated ${p2p.origin_ratio.toFixed(2)}×, measured ${m.origin_ratio.toFixed(2)}×`);
  if (p2p && m.agent_fallbacks !== undefined && m.agent_fallbacks !== null) extra.push(`agent fallbacks to the registry: simulated ${p2p.fallbacks}, measured ${m.agent_fallbacks}`);
  const simFirstByte = p2pDraws.map((x) => x.first_byte_p50_s).filter((x): x is number => x !== undefined && Number.isFinite(x));
  const measuredFirstByte = runs.map((x) => x.ttfb_p50_s).filter((x): x is number => typeof x === 'number');
  if (simFirstByte.length > 0 && measuredFirstByte.length > 0) {
    const [a, b] = [spread(simFirstByte), spread(measuredFirstByte)];
    extra.push(`clients' first byte, p50: simulated ${a.text}, measured ${b.text} (not part of the 15 % target: one 4 MiB piece, so it moves with which pieces the first parents send)`);
  }
  if (p2p && m.bound_s) extra.push(`Kumar–Ross bound: simulated ${secs(p2p.bound_s)}, bench ${secs(m.bound_s)}`);
  if (p2pFigs && p2pDraws.length > 1 && measuredP50 && measuredMax) {
    const where = (sim: Fig, v: number) => (v >= sim.min && v <= sim.max ? 'inside' : 'outside');
    extra.push(`the p2p run drawn ${p2pDraws.length} times with the real engine (seeds ${p2pDraws.map((v) => v.seed ?? '?').join(', ')}): differences are of their mean; the measured p50 lies ${where(p2pFigs.p50, measuredP50.mean)} and the measured max ${where(p2pFigs.max, measuredMax.mean)} their range`);
  }
  if (direct && direct.payload_share !== undefined && direct.payload_share < 1) {
    extra.push(`links carry ${direct.payload_share} of their rate as payload (network.payloadShare, the headers' share, set from the measured direct phase), so the direct row checks that setting rather than the model`);
  }
  if (m.cpu_idle_pct !== undefined && m.cpu_idle_pct !== null) extra.push(`machine CPU idle during the measured p2p phase ${m.cpu_idle_pct} %${m.foreign_cpu_s ? ` (other sessions' processes used ${m.foreign_cpu_s} CPU-s meanwhile)` : ''}`);
  if (extra.length) out.push(`${extra.join('; ')}.`, '');
  if (p2p && p2pFigs) {
    const want: Record<string, number> = { peers: p2p.nodes, blob_mib: p2p.image_bytes / 1048576, cap_mbit: (p2p.nic_bps * 8) / 1e6, registry_mbit: (p2p.registry_bps * 8) / 1e6 };
    const off = Object.keys(want).filter((k) => {
      const v = (m as unknown as Record<string, unknown>)[k];
      return typeof v === 'number' && Math.abs(v - want[k]!) > 1e-3 * want[k]!;
    });
    if (off.length) out.push(`**Parameters differ** between the measured run and the scenario: ${off.map((k) => `${k} ${(m as unknown as Record<string, number>)[k]} vs ${want[k]}`).join(', ')} — adjust \`scenarios/${CALIBRATION}.yaml\` and rerun before comparing.`, '');
    const ok = (a: number, b: number | null | undefined) => !!b && Math.abs(a - b) / b <= TARGET;
    const verdict = ok(p2pFigs.max.mean, measuredMax?.mean) && ok(p2pFigs.p50.mean, measuredP50?.mean) ? 'within' : 'outside';
    out.push(`Target: simulated completion times within 15 % of measured ones. Verdict on p2p p50 and max: **${verdict} 15 %**${m.git_head ? ` (measured at ${m.git_head}${m.source ? `, ${m.source}` : ''})` : ''}.`, '');
  }
  for (const n of m.notes ?? []) out.push(n, '');
  return out;
}

/** One run's figure, or the mean of several with their range (simulated draws or measured runs). */
interface Fig {
  mean: number;
  min: number;
  max: number;
  text: string;
}

function spread(xs: number[]): Fig {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  return { mean, min, max, text: xs.length === 1 ? secs(mean) : `${secs(mean)} (mean of ${xs.length}; ${secs(min)}–${secs(max)})` };
}

interface SimFigs {
  p50: Fig;
  max: Fig;
}

/** p50 and max over one or several simulated runs; null for none. */
function simFigs(vs: VariantResult[]): SimFigs | null {
  return vs.length > 0 ? { p50: spread(vs.map((v) => v.p50_s)), max: spread(vs.map((v) => v.max_s)) } : null;
}
