// `shoal scan` and `shoal vulndb import`: the vulnerability scanner from the command line, on a
// registry's data directory (safe while `shoal serve` runs on it: SQLite WAL, atomic blob writes).
import { Command, Option } from 'commander';
import { openStores } from '../server/registry-process.js';
import { parseDuration, parseSize, serveDefaults } from '../server/config.js';
import { openScanDatabase } from '../scan/scan-db.js';
import { VulnDb } from '../scan/vulndb/vulndb.js';
import { atOrAbove, openScanner, SEVERITY_ORDER, type ScanReport, type Severity } from '../scan/index.js';
import { isDigest, type Digest } from '../oci/digest.js';

/** Exit status of `shoal scan --fail-on` when a finding is at or above the threshold. */
export const EXIT_FINDINGS = 3;

/** "team/app:1", "team/app@sha256:..", "localhost:5000/team/app:1" → repository + tag or digest. */
export function parseImageRef(ref: string): { repository: string; reference: string } {
  const at = ref.indexOf('@');
  if (at !== -1) return { repository: ref.slice(0, at), reference: ref.slice(at + 1) };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { repository: ref.slice(0, colon), reference: ref.slice(colon + 1) };
  return { repository: ref, reference: 'latest' };
}

function severityCounts(report: ScanReport): string {
  const counts = new Map<Severity, number>();
  for (const f of report.findings) counts.set(f.severity, (counts.get(f.severity) ?? 0) + 1);
  return [...SEVERITY_ORDER].reverse().filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`).join(', ');
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

function printReport(ref: string, report: ScanReport): void {
  const s = report.stats;
  console.log(`${ref} (${report.manifestDigest})`);
  console.log(`  packages: ${report.packages.length}   findings: ${report.findings.length}${report.findings.length ? ` (${severityCounts(report)})` : ''}`);
  if (s) console.log(`  layers: ${s.layers} (${s.layersRead} read, ${s.layersCached} from cache), ${(s.bytesRead / 1048576).toFixed(1)} MiB read in ${s.durationMs} ms`);
  if (report.sbomDigest) console.log(`  sbom: ${report.sbomDigest} (CycloneDX referrer)`);
  for (const p of report.platforms ?? []) console.log(`  platform ${p.platform?.os ?? '?'}/${p.platform?.architecture ?? '?'}${p.platform?.variant ? `/${p.platform.variant}` : ''}: ${p.manifestDigest} ${p.packages.length} packages, ${p.findings.length} findings${p.sbomDigest ? `, sbom ${p.sbomDigest}` : ''}`);
  for (const n of report.notes ?? []) console.log(`  note: ${n}`);
  if (report.findings.length === 0) return;
  console.log('');
  printTable([
    ['SEVERITY', 'ID', 'PACKAGE', 'VERSION', 'FIXED IN', 'ECOSYSTEM', 'FOUND IN'],
    ...report.findings.map((f) => [f.severity, f.id, f.package.name, f.package.version, f.fixedVersion ?? '-', f.package.osvEcosystem ?? f.package.ecosystem, f.package.source]),
  ]);
}

function storeConfig(data: string) {
  return { data, maxManifestSize: parseSize(serveDefaults.maxManifestSize), maxBlobSize: parseSize(serveDefaults.maxBlobSize), manifestCacheSize: 0, manifestCacheTtl: 1000, gcGrace: parseDuration(serveDefaults.gcGrace) };
}

export function registerScanCommands(program: Command): void {
  program
    .command('scan')
    .description(
      'Scan an image in the registry at --data: catalog its packages (dpkg, apk, npm, Python) from its layers, ' +
        'match them against advisories imported with `shoal vulndb import`, and attach a CycloneDX SBOM as a referrer. ' +
        `Exit status 0, or ${EXIT_FINDINGS} with --fail-on when a finding is at or above that severity.`,
    )
    .argument('<image>', 'REPO:TAG or REPO@DIGEST (an index is scanned per platform)')
    .option('--data <dir>', 'data directory of the registry', serveDefaults.data)
    .option('--json', 'print the report as one JSON object', false)
    .addOption(new Option('--fail-on <severity>', `exit ${EXIT_FINDINGS} when a finding is at or above this severity`).choices([...SEVERITY_ORDER]))
    .option('--no-sbom', 'do not push the SBOM referrer')
    .action(async (image: string, opts: { data: string; json: boolean; failOn?: Severity; sbom: boolean }) => {
      const { repository, reference } = parseImageRef(image);
      const service = await openStores(storeConfig(opts.data));
      const scan = openScanner(opts.data, service, { attachSbom: opts.sbom });
      let report: ScanReport;
      try {
        const digest = isDigest(reference) ? (reference as Digest) : (await service.getManifest(repository, reference)).digest;
        report = await scan.scanner.scanImage(repository, digest);
        if (scan.vulndb.count() === 0) (report.notes ??= []).push('no advisories imported yet: run `shoal vulndb import PATH --data DIR` (findings need them)');
      } catch (err) {
        console.error(`shoal scan: ${(err as Error).message}`);
        process.exitCode = 1;
        return;
      } finally {
        scan.close();
        await service.meta.close();
      }
      if (opts.json) console.log(JSON.stringify(report));
      else printReport(image, report);
      if (opts.failOn) {
        const worst = report.findings.filter((f) => atOrAbove(f.severity, opts.failOn!));
        if (worst.length > 0) {
          if (!opts.json) console.error(`shoal scan: ${worst.length} finding(s) at or above ${opts.failOn}`);
          process.exitCode = EXIT_FINDINGS;
        }
      }
    });

  const vulndb = program.command('vulndb').description('The offline vulnerability database (OSV format) that `shoal scan` matches against.');
  vulndb
    .command('import')
    .description('Import OSV advisories from a directory of *.json files (recursively), one JSON file, or a JSON array. Advisories replace earlier ones by id; withdrawn ones are removed. No network access.')
    .argument('<path>', 'file or directory of OSV JSON documents (e.g. an unpacked osv.dev ecosystem export)')
    .option('--data <dir>', 'data directory of the registry (advisories go to DIR/scan.db)', serveDefaults.data)
    .option('--json', 'print the result as JSON', false)
    .action(async (path: string, opts: { data: string; json: boolean }) => {
      const db = openScanDatabase(opts.data);
      try {
        const v = new VulnDb(db);
        const r = await v.importPath(path);
        const total = v.count();
        if (opts.json) console.log(JSON.stringify({ ...r, total }));
        else {
          console.log(`imported ${r.imported} advisories from ${r.files} file(s) (${r.withdrawn} withdrawn, ${r.skipped} skipped); ${total} in the database`);
          for (const e of r.errors.slice(0, 20)) console.error(`  error: ${e}`);
        }
        if (r.errors.length > 0) process.exitCode = 1;
      } catch (err) {
        console.error(`shoal vulndb import: ${(err as Error).message}`);
        process.exitCode = 1;
      } finally {
        db.close();
      }
    });
}
