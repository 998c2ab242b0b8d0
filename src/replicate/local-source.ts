// The registry's own content as a replication source, read in-process from the RegistryService
// rather than over HTTP: trusted code needs no token when auth is on, passes no pull policy (the
// chain's gate decides), and skips a loopback hop. Speaks the few requests the Replicator and the
// full sync make (manifests, blobs with a byte range, referrers, catalog, tag list).
import { Readable } from 'node:stream';
import { RegistryClient, type BlobResponse } from '../client/registry-client.js';
import { RegistryError } from '../oci/errors.js';
import { asDigest } from '../oci/digest.js';
import { OCI_INDEX } from '../oci/media-types.js';
import { matchRoute } from '../registry/routes.js';
import type { RegistryService } from '../registry/service.js';

const json = (status: number, value: unknown, contentType = 'application/json'): BlobResponse => {
  const body = Buffer.from(JSON.stringify(value));
  return { status, headers: { 'content-type': contentType, 'content-length': String(body.length) }, body: Readable.from([body]) };
};

export class LocalRegistrySource extends RegistryClient {
  constructor(private readonly service: RegistryService) {
    super('local://registry');
  }

  override async send(method: string, path: string, headers: Record<string, string> = {}): Promise<BlobResponse> {
    try {
      return await this.dispatch(method, path, headers);
    } catch (err) {
      if (err instanceof RegistryError) return json(err.status, err.toBody());
      throw err;
    }
  }

  private async dispatch(method: string, rawPath: string, headers: Record<string, string>): Promise<BlobResponse> {
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : rawPath.slice(q + 1));
    const route = matchRoute(path);
    const head = method === 'HEAD';
    if (!route || (method !== 'GET' && !head)) throw new RegistryError('UNSUPPORTED', `${method} ${path} is not served by the local source`, { status: 405 });
    const page = { limit: Math.min(Number(query.get('n') ?? 10_000) || 10_000, 10_000), ...(query.get('last') ? { last: query.get('last')! } : {}) };
    switch (route.name) {
      case 'manifest': {
        const m = await this.service.getManifest(route.repo, route.ref);
        return {
          status: 200,
          headers: { 'content-type': m.mediaType, 'docker-content-digest': m.digest, 'content-length': String(m.body.length) },
          body: Readable.from(head ? [] : [m.body]),
        };
      }
      case 'blob': {
        const digest = asDigest(route.ref);
        const blob = await this.service.statBlob(route.repo, digest);
        if (!blob) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${route.repo}`);
        const base = { 'docker-content-digest': digest, 'content-type': 'application/octet-stream' };
        if (head) return { status: 200, headers: { ...base, 'content-length': String(blob.size) }, body: Readable.from([]) };
        const m = /^bytes=(\d+)-$/.exec(headers.range ?? '');
        const start = m ? Number(m[1]) : 0;
        if (start > 0 && start >= blob.size) throw new RegistryError('RANGE_INVALID', `range starts beyond the blob's ${blob.size} bytes`);
        const body = await this.service.blobs.read(digest, start > 0 ? { start, end: blob.size - 1 } : undefined);
        return { status: start > 0 ? 206 : 200, headers: { ...base, 'content-length': String(blob.size - start) }, body };
      }
      case 'referrers':
        return json(200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: await this.service.listReferrers(route.repo, asDigest(route.ref)) }, OCI_INDEX);
      case 'catalog':
        return json(200, { repositories: await this.service.meta.listRepositories(page) });
      case 'tags.list':
        return json(200, { name: route.repo, tags: await this.service.meta.listTags(route.repo, page) });
      default:
        throw new RegistryError('UNSUPPORTED', `${method} ${path} is not served by the local source`, { status: 405 });
    }
  }
}
