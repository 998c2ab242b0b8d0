// Imported OSV advisories in SQLite, and matching packages against them. Import is offline (files
// on disk); scans never touch the network.
import type Database from 'better-sqlite3';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Finding, Package } from '../scanner.js';
import { SEVERITY_ORDER } from '../scanner.js';
import { normalizePypiName } from '../catalog/inventory.js';
import { ecosystemMatches, isAffected, severityOf, type OsvAdvisory, type OsvAffected } from './osv.js';

export interface ImportResult {
  files: number;
  imported: number;
  withdrawn: number;
  skipped: number;
  errors: string[];
}

/** Names as advisories key them: PyPI names are normalised (PEP 503); others are exact. */
function matchName(ecosystem: string, name: string): string {
  return ecosystem.startsWith('PyPI') ? normalizePypiName(name) : name;
}

const MAX_FILES = 1_000_000;

export class VulnDb {
  private readonly byName;
  private readonly deleteAdvisory;
  private readonly insertAdvisory;
  private readonly insertAffected;
  private readonly countStmt;

  constructor(private readonly db: Database.Database) {
    this.byName = db.prepare(
      'SELECT a.id, a.aliases, a.summary, a.document, f.ecosystem, f.entry FROM affected f JOIN advisories a ON a.id = f.advisory_id WHERE f.name = ?',
    );
    this.deleteAdvisory = db.prepare('DELETE FROM advisories WHERE id = ?');
    this.insertAdvisory = db.prepare('INSERT INTO advisories (id, modified, summary, aliases, document, imported_at) VALUES (?, ?, ?, ?, ?, ?)');
    this.insertAffected = db.prepare('INSERT INTO affected (advisory_id, ecosystem, name, entry) VALUES (?, ?, ?, ?)');
    this.countStmt = db.prepare('SELECT COUNT(*) AS n FROM advisories');
  }

  count(): number {
    return (this.countStmt.get() as { n: number }).n;
  }

  /** Stores (or replaces, by id) advisories; a withdrawn advisory is removed. */
  importAdvisories(docs: OsvAdvisory[]): { imported: number; withdrawn: number; skipped: number } {
    let imported = 0;
    let withdrawn = 0;
    let skipped = 0;
    const now = Date.now();
    this.db.transaction(() => {
      for (const adv of docs) {
        if (!adv || typeof adv.id !== 'string' || !Array.isArray(adv.affected)) {
          skipped++;
          continue;
        }
        this.deleteAdvisory.run(adv.id);
        if (adv.withdrawn) {
          withdrawn++;
          continue;
        }
        // Only what matching needs is kept per row; the advisory's severity inputs stay in `document`.
        const doc = { id: adv.id, severity: adv.severity, database_specific: adv.database_specific };
        this.insertAdvisory.run(adv.id, adv.modified ?? null, adv.summary ?? null, JSON.stringify(adv.aliases ?? []), JSON.stringify(doc), now);
        for (const a of adv.affected) {
          const eco = a.package?.ecosystem;
          const name = a.package?.name;
          if (typeof eco !== 'string' || typeof name !== 'string') continue;
          this.insertAffected.run(adv.id, eco, matchName(eco, name), JSON.stringify(a));
        }
        imported++;
      }
    })();
    return { imported, withdrawn, skipped };
  }

  /** Imports a directory tree of *.json files, one JSON file, or a JSON array of advisories. */
  async importPath(path: string): Promise<ImportResult> {
    const result: ImportResult = { files: 0, imported: 0, withdrawn: 0, skipped: 0, errors: [] };
    const files: string[] = [];
    const walk = async (p: string) => {
      if (files.length >= MAX_FILES) return;
      const s = await stat(p);
      if (s.isDirectory()) {
        for (const name of (await readdir(p)).sort()) await walk(join(p, name));
      } else if (p === path || p.endsWith('.json')) files.push(p);
    };
    await walk(path);
    const batch: OsvAdvisory[] = [];
    const flush = () => {
      const r = this.importAdvisories(batch.splice(0));
      result.imported += r.imported;
      result.withdrawn += r.withdrawn;
      result.skipped += r.skipped;
    };
    for (const f of files) {
      result.files++;
      try {
        const doc = JSON.parse(await readFile(f, 'utf8')) as OsvAdvisory | OsvAdvisory[];
        batch.push(...(Array.isArray(doc) ? doc : [doc]));
      } catch (err) {
        result.errors.push(`${f}: ${(err as Error).message}`);
      }
      if (batch.length >= 1000) flush();
    }
    flush();
    return result;
  }

  /** Findings for one package: every advisory whose affected entry covers its ecosystem, name and version. */
  match(pkg: Package): Finding[] {
    const ecosystem = pkg.osvEcosystem ?? pkg.ecosystem;
    const name = matchName(ecosystem, pkg.sourceName ?? pkg.name);
    const version = pkg.sourceVersion ?? pkg.version;
    const byId = new Map<string, Finding>();
    for (const row of this.byName.all(name) as Array<{ id: string; aliases: string; summary: string | null; document: string; ecosystem: string; entry: string }>) {
      if (!ecosystemMatches(row.ecosystem, ecosystem)) continue;
      const affected = JSON.parse(row.entry) as OsvAffected;
      const r = isAffected(ecosystem, version, affected);
      if (!r.affected) continue;
      const adv = JSON.parse(row.document) as OsvAdvisory;
      const finding: Finding = { id: row.id, aliases: JSON.parse(row.aliases) as string[], severity: severityOf(adv, affected), package: pkg };
      if (r.fixed) finding.fixedVersion = r.fixed;
      if (row.summary) finding.summary = row.summary;
      const prev = byId.get(row.id);
      if (!prev || SEVERITY_ORDER.indexOf(finding.severity) > SEVERITY_ORDER.indexOf(prev.severity)) byId.set(row.id, finding);
    }
    return [...byId.values()];
  }

  matchAll(packages: Package[]): Finding[] {
    return sortFindings(packages.flatMap((p) => this.match(p)));
  }
}

/** Most severe first, then by advisory id and package. */
export function sortFindings(findings: Finding[]): Finding[] {
  const rank = (f: Finding) => SEVERITY_ORDER.indexOf(f.severity);
  return findings.sort((a, b) => rank(b) - rank(a) || cmp(a.id, b.id) || cmp(a.package.name, b.package.name) || cmp(a.package.source, b.package.source));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
