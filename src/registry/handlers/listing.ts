// Content discovery: tag list, catalog and referrers, with n/last pagination and Link headers.
import { RegistryError } from '../../oci/errors.js';
import { asDigest } from '../../oci/digest.js';
import { OCI_INDEX } from '../../oci/media-types.js';
import type { RequestContext } from '../context.js';
import type { RegistryService } from '../service.js';
import { sendJson } from '../respond.js';

/** Upper bound on one page; a larger `n` is clamped (the spec lets a registry return fewer). */
export const MAX_PAGE = 10_000;

interface Page {
  limit: number;
  last: string | undefined;
  requested: boolean;
}

function pageOf(query: URLSearchParams): Page {
  const n = query.get('n');
  const last = query.get('last') ?? undefined;
  if (n === null) return { limit: MAX_PAGE, last, requested: false };
  if (!/^\d+$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, got "${n.slice(0, 20)}"`);
  return { limit: Math.min(Number(n), MAX_PAGE), last, requested: true };
}

/** Fetches one extra row to learn whether a next page exists. */
async function paginate(page: Page, list: (limit: number) => Promise<string[]>): Promise<{ items: string[]; more: boolean }> {
  if (page.limit === 0) return { items: [], more: false };
  const rows = await list(page.limit + 1);
  return { items: rows.slice(0, page.limit), more: rows.length > page.limit };
}

function linkHeader(path: string, limit: number, last: string): Record<string, string> {
  return { Link: `<${path}?n=${limit}&last=${encodeURIComponent(last)}>; rel="next"` };
}

export function listingHandlers(service: RegistryService) {
  return {
    async tags(ctx: RequestContext): Promise<void> {
      const { route } = ctx;
      const page = pageOf(ctx.query);
      if (!(await service.meta.repositoryExists(route.repo))) throw new RegistryError('NAME_UNKNOWN', `repository ${route.repo} is not known to this registry`);
      const { items, more } = await paginate(page, (limit) => service.meta.listTags(route.repo, { limit, last: page.last }));
      const headers = more ? linkHeader(`/v2/${route.repo}/tags/list`, page.limit, items[items.length - 1]!) : {};
      sendJson(ctx.res, 200, { name: route.repo, tags: items }, headers);
    },

    async catalog(ctx: RequestContext): Promise<void> {
      const page = pageOf(ctx.query);
      const { items, more } = await paginate(page, (limit) => service.meta.listRepositories({ limit, last: page.last }));
      const headers = more ? linkHeader('/v2/_catalog', page.limit, items[items.length - 1]!) : {};
      sendJson(ctx.res, 200, { repositories: items }, headers);
    },

    async referrers(ctx: RequestContext): Promise<void> {
      const { route, query } = ctx;
      const artifactType = query.get('artifactType') ?? undefined;
      const manifests = await service.listReferrers(route.repo, asDigest(route.ref), artifactType);
      const headers: Record<string, string> = artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {};
      sendJson(ctx.res, 200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, headers, OCI_INDEX);
    },
  };
}
