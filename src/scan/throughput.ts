// Scan throughput, for benchmarks (bench/scan, the delivery chain's bench): scans an image with no
// layer cache and no SBOM push, so every layer is streamed through gunzip and the tar reader.
import type { RegistryService } from '../registry/service.js';
import type { Digest } from '../oci/digest.js';
import { openScanDatabaseFile } from './scan-db.js';
import { VulnDb } from './vulndb/vulndb.js';
import { ImageScanner } from './image-scanner.js';
import type { ScanReport, ScanStats } from './scanner.js';

export interface ScanRate {
  /** Layer data as stored (compressed) and as tar, in MiB. */
  compressedMiB: number;
  tarMiB: number;
  seconds: number;
  compressedMiBps: number;
  tarMiBps: number;
}

const MIB = 1024 * 1024;

export function scanRate(stats: ScanStats): ScanRate {
  const seconds = Math.max(stats.durationMs, 1) / 1000;
  const compressedMiB = stats.bytesRead / MIB;
  const tarMiB = stats.tarBytes / MIB;
  const round = (n: number) => Math.round(n * 10) / 10;
  return { compressedMiB: round(compressedMiB), tarMiB: round(tarMiB), seconds: Math.round(seconds * 1000) / 1000, compressedMiBps: round(compressedMiB / seconds), tarMiBps: round(tarMiB / seconds) };
}

/** Scans `repository@digest` cold (every layer read) and reports the rate; advisories are not needed. */
export async function measureScanThroughput(registry: RegistryService, repository: string, digest: Digest): Promise<{ rate: ScanRate; report: ScanReport }> {
  const db = openScanDatabaseFile(':memory:');
  try {
    const scanner = new ImageScanner({ registry, vulndb: new VulnDb(db), attachSbom: false });
    const report = await scanner.scanImage(repository, digest);
    return { rate: scanRate(report.stats!), report };
  } finally {
    db.close();
  }
}
