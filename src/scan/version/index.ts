// One comparator per ecosystem, chosen by the OSV ecosystem name ("Debian:12" → dpkg).
import { compareDpkg } from './dpkg.js';
import { compareApk } from './apk.js';
import { compareSemver } from './semver.js';
import { comparePep440 } from './pep440.js';

export type VersionComparator = (a: string, b: string) => number;

export { compareDpkg, compareApk, compareSemver, comparePep440 };

/** The comparator for an OSV ecosystem (with or without its ":release" suffix); undefined when unsupported. */
export function comparatorFor(ecosystem: string): VersionComparator | undefined {
  switch (ecosystem.split(':')[0]) {
    case 'Debian':
    case 'Ubuntu':
      return compareDpkg;
    case 'Alpine':
      return compareApk;
    case 'npm':
      return compareSemver;
    case 'PyPI':
      return comparePep440;
    default:
      return undefined;
  }
}
