// Per-layer facts cached by layer digest: a layer's bytes never change, so neither do the package
// databases and whiteouts read from it. Facts (not final package lists) are cached so whiteouts
// of upper layers still apply when the same base layer is shared by other images.
import type Database from 'better-sqlite3';
import type { Digest } from '../oci/digest.js';
import type { LayerFacts } from './catalog/facts.js';

/** Bump when the catalogers change what they record, so older cache rows are ignored. */
export const LAYER_FACTS_FORMAT = 2;

export interface LayerFactsCache {
  get(digest: Digest): LayerFacts | undefined;
  put(digest: Digest, facts: LayerFacts): void;
}

export class SqliteLayerFactsCache implements LayerFactsCache {
  private readonly getStmt;
  private readonly putStmt;

  constructor(db: Database.Database) {
    this.getStmt = db.prepare('SELECT facts FROM layer_facts WHERE digest = ? AND format = ?');
    this.putStmt = db.prepare('INSERT OR REPLACE INTO layer_facts (digest, format, facts, created_at) VALUES (?, ?, ?, ?)');
  }

  get(digest: Digest): LayerFacts | undefined {
    const row = this.getStmt.get(digest, LAYER_FACTS_FORMAT) as { facts: string } | undefined;
    return row ? (JSON.parse(row.facts) as LayerFacts) : undefined;
  }

  put(digest: Digest, facts: LayerFacts): void {
    this.putStmt.run(digest, LAYER_FACTS_FORMAT, JSON.stringify(facts), Date.now());
  }
}
