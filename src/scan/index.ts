// The scan component's public surface: open it on a data directory and a registry.
import type Database from 'better-sqlite3';
import type { RegistryService } from '../registry/service.js';
import { openScanDatabase } from './scan-db.js';
import { SqliteLayerFactsCache } from './layer-cache.js';
import { VulnDb } from './vulndb/vulndb.js';
import { ImageScanner } from './image-scanner.js';

export type { Scanner, ScanReport, Finding, Package, Severity, ScanStats, PlatformReport } from './scanner.js';
export { SEVERITY_ORDER, atOrAbove } from './scanner.js';
export { ImageScanner } from './image-scanner.js';
export { VulnDb } from './vulndb/vulndb.js';
export { CYCLONEDX_MEDIA_TYPE } from './sbom.js';

export interface ScanComponent {
  scanner: ImageScanner;
  vulndb: VulnDb;
  db: Database.Database;
  close(): void;
}

/** Opens scan.db under `dataDir` and builds a scanner over `registry`'s storage. */
export function openScanner(dataDir: string, registry: RegistryService, opts: { attachSbom?: boolean } = {}): ScanComponent {
  const db = openScanDatabase(dataDir);
  const vulndb = new VulnDb(db);
  const scanner = new ImageScanner({ registry, vulndb, cache: new SqliteLayerFactsCache(db), ...(opts.attachSbom !== undefined ? { attachSbom: opts.attachSbom } : {}) });
  return { scanner, vulndb, db, close: () => db.close() };
}
