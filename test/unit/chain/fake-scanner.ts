// A stand-in Scanner for chain tests: images whose manifest digest a test put in `vulnerable`
// get one CRITICAL and one LOW finding, everything else is clean.
import type { Finding, Scanner } from '../../../src/scan/scanner.js';
import type { Digest } from '../../../src/oci/digest.js';

export const finding = (id: string, severity: Finding['severity']): Finding => ({ id, aliases: [`ALIAS-${id}`], severity, package: { ecosystem: 'Debian', name: 'openssl', version: '1.0', source: 'var/lib/dpkg/status' } });

export function fakeScanner(vulnerable: ReadonlySet<string>): Scanner {
  return {
    async scanImage(_repo: string, digest: Digest) {
      return { manifestDigest: digest, packages: [], findings: vulnerable.has(digest) ? [finding('CVE-2024-0001', 'CRITICAL'), finding('CVE-2024-0002', 'LOW')] : [], scannedAt: new Date().toISOString() };
    },
  };
}
