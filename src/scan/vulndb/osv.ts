// OSV schema (https://ossf.github.io/osv-schema/): the parts the scanner uses, the severity an
// advisory is ranked by, and whether a version is affected (ECOSYSTEM / SEMVER ranges and
// explicit version lists).
import type { Severity } from '../scanner.js';
import { comparatorFor, compareSemver, type VersionComparator } from '../version/index.js';
import { comparePep440 } from '../version/pep440.js';
import { cvss3BaseScore, severityOfScore } from './cvss.js';

export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}

export interface OsvRange {
  type: string;
  events: OsvEvent[];
}

export interface OsvSeverity {
  type: string;
  score: string;
}

export interface OsvAffected {
  package?: { ecosystem?: string; name?: string; purl?: string };
  ranges?: OsvRange[];
  versions?: string[];
  severity?: OsvSeverity[];
  ecosystem_specific?: Record<string, unknown>;
  database_specific?: Record<string, unknown>;
}

export interface OsvAdvisory {
  id: string;
  modified?: string;
  withdrawn?: string;
  aliases?: string[];
  summary?: string;
  details?: string;
  severity?: OsvSeverity[];
  affected?: OsvAffected[];
  database_specific?: Record<string, unknown>;
}

const NAMED: Record<string, Severity> = {
  critical: 'CRITICAL',
  high: 'HIGH',
  important: 'HIGH',
  moderate: 'MEDIUM',
  medium: 'MEDIUM',
  low: 'LOW',
  negligible: 'LOW',
  unimportant: 'LOW',
};

function named(value: unknown): Severity | undefined {
  return typeof value === 'string' ? NAMED[value.trim().toLowerCase()] : undefined;
}

/** A `severity[]` list: a CVSS v3 vector (scored), or Ubuntu's priority ("type": "Ubuntu", "score": "medium"). */
function fromSeverityList(list: OsvSeverity[] | undefined): Severity | undefined {
  for (const s of list ?? []) {
    if (s.type === 'Ubuntu') {
      const n = named(s.score);
      if (n) return n;
      continue;
    }
    if (!s.type?.startsWith('CVSS_V3')) continue;
    const score = cvss3BaseScore(s.score) ?? (/^\d+(\.\d+)?$/.test(s.score) ? Number(s.score) : null);
    if (score !== null) return severityOfScore(score);
  }
  return undefined;
}

/**
 * The severity of an advisory for one affected package: a named severity from the affected
 * entry's ecosystem_specific, then the advisory's database_specific, then the `severity[]` lists
 * (the affected entry's, then the advisory's: a CVSS v3 vector scored, or an Ubuntu priority);
 * UNKNOWN when none is given.
 */
export function severityOf(adv: OsvAdvisory, affected: OsvAffected | undefined): Severity {
  return (
    named(affected?.ecosystem_specific?.['severity']) ??
    named(adv.database_specific?.['severity']) ??
    fromSeverityList(affected?.severity) ??
    fromSeverityList(adv.severity) ??
    'UNKNOWN'
  );
}

/** Whether a package in `pkgEcosystem` ("Debian:12") is covered by an advisory for `advEcosystem`. */
export function ecosystemMatches(advEcosystem: string, pkgEcosystem: string): boolean {
  if (advEcosystem === pkgEcosystem) return true;
  const [advBase, ...advRest] = advEcosystem.split(':');
  const [pkgBase] = pkgEcosystem.split(':');
  if (advBase !== pkgBase) return false;
  if (advRest.length === 0) return true; // an advisory for every release
  // "Ubuntu:22.04:LTS" / "Ubuntu:Pro:22.04:LTS" name the release plus a support channel.
  const release = pkgEcosystem.slice(pkgBase!.length + 1);
  return release !== '' && advRest.includes(release);
}

export interface AffectedResult {
  affected: boolean;
  /** The lowest "fixed" version above the package's version, when a range names one. */
  fixed?: string;
}

/** OSV's evaluation of one range: walk the events in version order, toggling "affected". */
function inRange(version: string, range: OsvRange, cmp: VersionComparator): AffectedResult {
  const key = (e: OsvEvent) => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '';
  const events = range.events.filter((e) => key(e) !== '');
  const before = (a: string, b: string) => (a === '0' ? (b === '0' ? 0 : -1) : b === '0' ? 1 : cmp(a, b));
  const sorted = [...events].sort((a, b) => before(key(a), key(b)));
  let affected = false;
  for (const e of sorted) {
    if (e.introduced !== undefined && (e.introduced === '0' || cmp(version, e.introduced) >= 0)) affected = true;
    else if (e.fixed !== undefined && cmp(version, e.fixed) >= 0) affected = false;
    else if (e.last_affected !== undefined && cmp(version, e.last_affected) > 0) affected = false;
  }
  const limits = events.filter((e) => e.limit !== undefined).map((e) => e.limit!);
  if (affected && limits.length > 0 && !limits.some((l) => l === '*' || cmp(version, l) < 0)) affected = false;
  const fixedAbove = sorted.filter((e) => e.fixed !== undefined && cmp(version, e.fixed) < 0).map((e) => e.fixed!);
  return fixedAbove.length > 0 ? { affected, fixed: fixedAbove[0]! } : { affected };
}

function sameVersion(ecosystem: string, a: string, b: string): boolean {
  if (a === b) return true;
  if (ecosystem.startsWith('PyPI')) {
    try {
      return comparePep440(a, b) === 0; // "1.0" and "1.0.0" are the same release
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Whether `version` is affected per the entry's explicit `versions` and its ECOSYSTEM/SEMVER
 * ranges (GIT ranges name commits, not versions, and are skipped). A range whose versions the
 * ecosystem's comparator cannot parse is skipped rather than guessed at.
 */
export function isAffected(ecosystem: string, version: string, affected: OsvAffected): AffectedResult {
  const listed = (affected.versions ?? []).some((v) => sameVersion(ecosystem, v, version));
  let fixed: string | undefined;
  let hit = listed;
  for (const range of affected.ranges ?? []) {
    const cmp = range.type === 'SEMVER' ? compareSemver : range.type === 'ECOSYSTEM' ? comparatorFor(ecosystem) : undefined;
    if (!cmp || !Array.isArray(range.events)) continue;
    let r: AffectedResult;
    try {
      cmp(version, version); // throws when the package's own version is not one this ecosystem can order
      r = inRange(version, range, cmp);
    } catch {
      continue;
    }
    if (r.affected) hit = true;
    if (r.fixed && (fixed === undefined || safeLess(cmp, r.fixed, fixed))) fixed = r.fixed;
  }
  return fixed !== undefined ? { affected: hit, fixed } : { affected: hit };
}

function safeLess(cmp: VersionComparator, a: string, b: string): boolean {
  try {
    return cmp(a, b) < 0;
  } catch {
    return false;
  }
}
