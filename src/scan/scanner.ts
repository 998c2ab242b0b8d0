// The seam between the vulnerability scanner and its users (the delivery chain's scan and gate
// stages, `shoal scan`). Kept to plain data so a remote scanner could stand behind it later.
import type { Digest } from '../oci/digest.js';

export type Severity = 'UNKNOWN' | 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export const SEVERITY_ORDER: readonly Severity[] = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];

/** Whether `severity` is at or above `threshold` in SEVERITY_ORDER (for gates and `--fail-on`). */
export function atOrAbove(severity: Severity, threshold: Severity): boolean {
  return SEVERITY_ORDER.indexOf(severity) >= SEVERITY_ORDER.indexOf(threshold);
}

export type Ecosystem = 'Debian' | 'Ubuntu' | 'Alpine' | 'npm' | 'PyPI';

export interface Package {
  ecosystem: Ecosystem;
  name: string;
  version: string;
  /** Where it was found, e.g. "var/lib/dpkg/status" or "app/package-lock.json". */
  source: string;
  /** The OSV ecosystem advisories use, with the distribution release: "Debian:12", "Alpine:v3.19", "npm". */
  osvEcosystem?: string;
  /** The source package OS advisories are keyed on (dpkg "Source:", apk origin), when it differs from `name`. */
  sourceName?: string;
  /** The source package's version, when it differs from `version` (dpkg binNMUs). */
  sourceVersion?: string;
  /** Package URL (purl), as written into the SBOM. */
  purl?: string;
}

export interface Finding {
  /** Advisory id as imported (OSV id, e.g. "GHSA-xxxx" or "DSA-1234-1"), plus its aliases. */
  id: string;
  aliases: string[];
  severity: Severity;
  package: Package;
  /** First fixed version when the advisory names one. */
  fixedVersion?: string;
  summary?: string;
}

export interface ScanReport {
  /** The manifest scanned (for an index: one report per platform manifest). */
  manifestDigest: Digest;
  packages: Package[];
  findings: Finding[];
  /** Digest of the SBOM document attached to the image as a referrer, when one was pushed. */
  sbomDigest?: Digest;
  scannedAt: string;
  /** What could not be scanned and why (e.g. a zstd layer: "unsupported compression"). */
  notes?: string[];
  /** For an index: one report per platform manifest (the top-level lists are their union). */
  platforms?: PlatformReport[];
  stats?: ScanStats;
}

export interface PlatformReport extends ScanReport {
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ScanStats {
  layers: number;
  /** Layers read from the blob store in this scan (the rest came from the per-layer cache). */
  layersRead: number;
  layersCached: number;
  /** Compressed bytes read from the blob store, and the tar bytes they expanded to. */
  bytesRead: number;
  tarBytes: number;
  durationMs: number;
}

export interface Scanner {
  /** Scans an image already in this registry; layers already scanned are served from the cache by digest. */
  scanImage(repository: string, manifestDigest: Digest): Promise<ScanReport>;
}
