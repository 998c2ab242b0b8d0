// The Scanner over this registry's own storage: reads each layer's blob (or its cached facts),
// applies the layers with their whiteouts, catalogs the packages, matches them against the
// imported advisories and attaches a CycloneDX SBOM to the image as a referrer.
import type { RegistryService } from '../registry/service.js';
import type { Digest } from '../oci/digest.js';
import { INDEX_TYPES, OCI_CONFIG, isNonDistributable } from '../oci/media-types.js';
import type { Finding, Package, PlatformReport, ScanReport, Scanner, ScanStats } from './scanner.js';
import type { LayerFacts } from './catalog/facts.js';
import { applyLayers, inventory } from './catalog/inventory.js';
import { extractLayerFacts } from './layers/layer-facts.js';
import type { LayerFactsCache } from './layer-cache.js';
import { sortFindings, type VulnDb } from './vulndb/vulndb.js';
import { pushSbom, type SbomSubject } from './sbom.js';

export interface ImageScannerOptions {
  registry: RegistryService;
  vulndb: VulnDb;
  cache?: LayerFactsCache;
  /** Push a CycloneDX SBOM referrer for each scanned image manifest (default true). */
  attachSbom?: boolean;
  /** Layers of one image read at the same time (default 4). */
  layerConcurrency?: number;
  now?: () => number;
}

const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set([OCI_CONFIG, 'application/vnd.docker.container.image.v1+json']);

interface ManifestDoc {
  mediaType?: string;
  config?: { mediaType?: string };
  layers?: Array<{ mediaType: string; digest: Digest; size: number }>;
  manifests?: Array<{ mediaType: string; digest: Digest; size: number; platform?: { os?: string; architecture?: string; variant?: string }; annotations?: Record<string, string> }>;
}

/** Buildkit stores attestations as "unknown/unknown" platform manifests in an index: not images. */
function isAttestation(m: NonNullable<ManifestDoc['manifests']>[number]): boolean {
  return m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (m.platform?.os === 'unknown' && m.platform?.architecture === 'unknown');
}

function emptyStats(): ScanStats {
  return { layers: 0, layersRead: 0, layersCached: 0, bytesRead: 0, tarBytes: 0, durationMs: 0 };
}

function addStats(into: ScanStats, s: ScanStats): void {
  into.layers += s.layers;
  into.layersRead += s.layersRead;
  into.layersCached += s.layersCached;
  into.bytesRead += s.bytesRead;
  into.tarBytes += s.tarBytes;
}

export class ImageScanner implements Scanner {
  private readonly registry: RegistryService;
  private readonly vulndb: VulnDb;
  private readonly cache: LayerFactsCache | undefined;
  private readonly attachSbom: boolean;
  private readonly layerConcurrency: number;
  private readonly now: () => number;

  constructor(opts: ImageScannerOptions) {
    this.registry = opts.registry;
    this.vulndb = opts.vulndb;
    this.cache = opts.cache;
    this.attachSbom = opts.attachSbom ?? true;
    this.layerConcurrency = Math.max(1, opts.layerConcurrency ?? 4);
    this.now = opts.now ?? Date.now;
  }

  async scanImage(repository: string, manifestDigest: Digest): Promise<ScanReport> {
    const started = this.now();
    const m = await this.registry.getManifest(repository, manifestDigest);
    const doc = JSON.parse(m.body.toString('utf8')) as ManifestDoc;
    if (!INDEX_TYPES.has(m.mediaType) && !Array.isArray(doc.manifests)) {
      const report = await this.scanManifest(repository, m.digest, m.mediaType, m.body.length, doc);
      report.stats!.durationMs = this.now() - started;
      return report;
    }
    // An index: scan each platform manifest (shared layers come from the cache after the first).
    const platforms: PlatformReport[] = [];
    const indexNotes: string[] = [];
    for (const child of doc.manifests ?? []) {
      if (isAttestation(child)) continue;
      let cm;
      try {
        cm = await this.registry.getManifest(repository, child.digest);
      } catch (err) {
        indexNotes.push(`${child.digest}: platform manifest not scanned (${(err as Error).message})`);
        continue;
      }
      const childDoc = JSON.parse(cm.body.toString('utf8')) as ManifestDoc;
      if (Array.isArray(childDoc.manifests)) continue; // nested indexes are not images
      const r: PlatformReport = await this.scanManifest(repository, cm.digest, cm.mediaType, cm.body.length, childDoc);
      if (child.platform) r.platform = child.platform;
      platforms.push(r);
    }
    const stats = emptyStats();
    for (const p of platforms) addStats(stats, p.stats!);
    const report: ScanReport = {
      manifestDigest: m.digest,
      packages: unionPackages(platforms.flatMap((p) => p.packages)),
      findings: sortFindings(unionFindings(platforms.flatMap((p) => p.findings))),
      scannedAt: new Date(this.now()).toISOString(),
      notes: [...indexNotes, ...platforms.flatMap((p) => p.notes ?? [])],
      platforms,
      stats,
    };
    // The index gets an SBOM of the union too, so a client holding only the index digest finds one.
    await this.attach(report, { repository, digest: m.digest, mediaType: m.mediaType, size: m.body.length });
    stats.durationMs = this.now() - started;
    return report;
  }

  private async attach(report: ScanReport, subject: SbomSubject): Promise<void> {
    if (!this.attachSbom) return;
    try {
      report.sbomDigest = await pushSbom(this.registry, subject, report.packages);
    } catch (err) {
      (report.notes ??= []).push(`SBOM not attached: ${(err as Error).message}`);
    }
  }

  private async scanManifest(repository: string, digest: Digest, mediaType: string, size: number, doc: ManifestDoc): Promise<ScanReport> {
    const stats = emptyStats();
    const notes: string[] = [];
    const configType = doc.config?.mediaType;
    if (configType !== undefined && !IMAGE_CONFIG_TYPES.has(configType)) {
      // An artifact (SBOM, signature, Helm chart): its layers are not filesystem tars.
      notes.push(`not a container image (config ${configType}): nothing to scan`);
      return { manifestDigest: digest, packages: [], findings: [], scannedAt: new Date(this.now()).toISOString(), notes, stats };
    }
    const layers = doc.layers ?? [];
    stats.layers = layers.length;
    // Layers are read concurrently (gunzip runs on libuv's thread pool, so this uses several cores);
    // they are applied in manifest order afterwards, and notes keep layer order too.
    const results: Array<{ facts: LayerFacts | undefined; notes: string[] }> = new Array(layers.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < layers.length; i = next++) {
        const layerNotes: string[] = [];
        results[i] = { facts: await this.layerFacts(layers[i]!, stats, layerNotes), notes: layerNotes };
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.layerConcurrency, layers.length) }, worker));
    const layerFacts: LayerFacts[] = [];
    for (const r of results) {
      notes.push(...r.notes);
      if (r.facts) layerFacts.push(r.facts);
    }
    const packages = inventory(applyLayers(layerFacts));
    const findings = this.vulndb.matchAll(packages);
    const report: ScanReport = { manifestDigest: digest, packages, findings, scannedAt: new Date(this.now()).toISOString(), notes, stats };
    await this.attach(report, { repository, digest, mediaType, size });
    return report;
  }

  /** Cached facts, or the layer read now; undefined (with a note) when it cannot be read. */
  private async layerFacts(layer: { mediaType: string; digest: Digest }, stats: ScanStats, notes: string[]): Promise<LayerFacts | undefined> {
    const cached = this.cache?.get(layer.digest);
    if (cached) {
      stats.layersCached++;
      notes.push(...cached.notes.map((n) => `${layer.digest.slice(0, 19)}: ${n}`));
      return cached;
    }
    if (isNonDistributable(layer.mediaType) && !(await this.registry.blobs.stat(layer.digest))) {
      notes.push(`${layer.digest}: non-distributable layer not in this registry (not scanned)`);
      return undefined;
    }
    const counters = { compressedBytes: 0, tarBytes: 0 };
    try {
      stats.layersRead++;
      const facts = await extractLayerFacts(this.registry.blobs, layer.digest, counters);
      this.cache?.put(layer.digest, facts);
      notes.push(...facts.notes.map((n) => `${layer.digest.slice(0, 19)}: ${n}`));
      return facts;
    } catch (err) {
      notes.push(`${layer.digest}: ${(err as Error).message}`);
      return undefined;
    } finally {
      stats.bytesRead += counters.compressedBytes;
      stats.tarBytes += counters.tarBytes;
    }
  }
}

function unionPackages(list: Package[]): Package[] {
  const seen = new Map<string, Package>();
  for (const p of list) seen.set(`${p.ecosystem}\0${p.name}\0${p.version}\0${p.source}`, p);
  return [...seen.values()];
}

function unionFindings(list: Finding[]): Finding[] {
  const seen = new Map<string, Finding>();
  for (const f of list) seen.set(`${f.id}\0${f.package.ecosystem}\0${f.package.name}\0${f.package.version}\0${f.package.source}`, f);
  return [...seen.values()];
}
