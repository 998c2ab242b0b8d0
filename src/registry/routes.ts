// Maps a raw request path onto a Distribution API route. Works on the raw path on purpose:
// URL normalisation would turn "a/../b" into "b" and hide path tricks from name validation.
import { RegistryError } from '../oci/errors.js';
import { assertRepository } from '../oci/reference.js';

export type RouteName =
  | 'base'
  | 'catalog'
  | 'tags.list'
  | 'manifest'
  | 'blob'
  | 'upload.start'
  | 'upload'
  | 'referrers';

export interface RouteMatch {
  name: RouteName;
  repo: string;
  /** Tag/digest for manifests, digest for blobs and referrers, session id for uploads. */
  ref: string;
}

export function matchRoute(path: string): RouteMatch | null {
  if (path === '/v2/' || path === '/v2') return { name: 'base', repo: '', ref: '' };
  if (!path.startsWith('/v2/')) return null;
  if (path === '/v2/_catalog') return { name: 'catalog', repo: '', ref: '' };
  const parts = path.slice(4).split('/');
  const n = parts.length;
  const at = (i: number) => parts[n - i] ?? '';
  const repoOf = (tailLength: number) => {
    const name = parts.slice(0, n - tailLength).join('/');
    if (/%2f/i.test(name) || name.includes('%')) {
      throw new RegistryError('NAME_INVALID', 'repository names must not contain percent-encoded characters (such as %2F)');
    }
    return assertRepository(name);
  };
  if (n >= 4 && at(3) === 'blobs' && at(2) === 'uploads') {
    return at(1) === '' ? { name: 'upload.start', repo: repoOf(3), ref: '' } : { name: 'upload', repo: repoOf(3), ref: at(1) };
  }
  if (n >= 3 && at(2) === 'tags' && at(1) === 'list') return { name: 'tags.list', repo: repoOf(2), ref: '' };
  if (n >= 3 && at(2) === 'manifests' && at(1) !== '') return { name: 'manifest', repo: repoOf(2), ref: decodeRef(at(1)) };
  if (n >= 3 && at(2) === 'blobs' && at(1) !== '') return { name: 'blob', repo: repoOf(2), ref: decodeRef(at(1)) };
  if (n >= 3 && at(2) === 'referrers' && at(1) !== '') return { name: 'referrers', repo: repoOf(2), ref: decodeRef(at(1)) };
  return null;
}

/** Some clients percent-encode the ":" of a digest. */
function decodeRef(ref: string): string {
  if (!ref.includes('%')) return ref;
  try {
    return decodeURIComponent(ref);
  } catch {
    throw new RegistryError('DIGEST_INVALID', 'malformed percent-encoding in reference');
  }
}
