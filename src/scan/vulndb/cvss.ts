// CVSS v3.0 / v3.1 base score from a vector string (FIRST CVSS v3.1 specification §7.1, §7.4),
// and the qualitative rating (§5) advisories without a named severity are ranked by.
import type { Severity } from '../scanner.js';

const WEIGHTS = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
} as const;
/** Privileges Required weighs more when the scope changes. */
const PR = { U: { N: 0.85, L: 0.62, H: 0.27 }, C: { N: 0.85, L: 0.68, H: 0.5 } } as const;

/** v3.1 Roundup: the smallest one-decimal number >= x, computed on integers to avoid float artefacts. */
function roundup31(x: number): number {
  const i = Math.round(x * 100_000);
  return i % 10_000 === 0 ? i / 100_000 : (Math.floor(i / 10_000) + 1) / 10;
}

const roundup30 = (x: number) => Math.ceil(x * 10) / 10;

/** The base score of a "CVSS:3.x/AV:../AC:../PR:../UI:../S:../C:../I:../A:.." vector; null when it is not one. */
export function cvss3BaseScore(vector: string): number | null {
  const parts = vector.trim().split('/');
  const version = /^CVSS:3\.([01])$/.exec(parts[0] ?? '');
  if (!version) return null;
  const m = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const [k, v] = p.split(':');
    if (k && v) m.set(k, v);
  }
  const get = <T extends Record<string, number>>(table: T, key: string): number | undefined => {
    const v = m.get(key);
    return v !== undefined && v in table ? table[v as keyof T] : undefined;
  };
  const scope = m.get('S');
  if (scope !== 'U' && scope !== 'C') return null;
  const av = get(WEIGHTS.AV, 'AV');
  const ac = get(WEIGHTS.AC, 'AC');
  const pr = get(PR[scope], 'PR');
  const ui = get(WEIGHTS.UI, 'UI');
  const c = get(WEIGHTS.CIA, 'C');
  const i = get(WEIGHTS.CIA, 'I');
  const a = get(WEIGHTS.CIA, 'A');
  if (av === undefined || ac === undefined || pr === undefined || ui === undefined || c === undefined || i === undefined || a === undefined) return null;
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = scope === 'U' ? 6.42 * iss : 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15);
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  const roundup = version[1] === '1' ? roundup31 : roundup30;
  const raw = scope === 'U' ? impact + exploitability : 1.08 * (impact + exploitability);
  return roundup(Math.min(raw, 10));
}

/** CVSS qualitative rating; a score of 0 ("None") is reported as LOW. */
export function severityOfScore(score: number): Severity {
  if (score >= 9) return 'CRITICAL';
  if (score >= 7) return 'HIGH';
  if (score >= 4) return 'MEDIUM';
  return 'LOW';
}
