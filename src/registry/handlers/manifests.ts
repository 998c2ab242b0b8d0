// Manifest GET/HEAD/PUT/DELETE. GET/HEAD is the hot path: served from the manifest cache.
import type { RequestContext } from '../context.js';
import type { RegistryService } from '../service.js';
import { readBody, sendEmpty } from '../respond.js';

export function manifestHandlers(service: RegistryService) {
  return {
    async get(ctx: RequestContext): Promise<void> {
      const { req, res, route } = ctx;
      const m = await service.getManifest(route.repo, route.ref);
      // Existence checks before a push (HEAD) keep the manifest out of untagged GC for a while.
      if (req.method === 'HEAD') await service.touch(m.digest);
      const headers = m.headers;
      if (req.headers['if-none-match'] === m.etag) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : m.body);
    },

    async put(ctx: RequestContext): Promise<void> {
      const { req, route, query } = ctx;
      // A policy that had to read the body first (tag immutability) hands it over.
      const body = (ctx.state.manifestBody as Buffer | undefined) ?? (await readBody(req, service.limits.maxManifestBytes, 'manifest'));
      const extraTags = query.getAll('tag');
      const { digest, parsed } = await service.putManifest(route.repo, route.ref, body, req.headers['content-type'], extraTags);
      const headers: Record<string, string | string[]> = {
        Location: `/v2/${route.repo}/manifests/${digest}`,
        'Docker-Content-Digest': digest,
      };
      if (parsed.subject) headers['OCI-Subject'] = parsed.subject.digest;
      if (extraTags.length > 0) headers['OCI-Tag'] = extraTags;
      sendEmpty(ctx.res, 201, headers);
    },

    async delete(ctx: RequestContext): Promise<void> {
      await service.deleteManifest(ctx.route.repo, ctx.route.ref);
      sendEmpty(ctx.res, 202);
    },
  };
}
