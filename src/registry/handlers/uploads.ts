// Blob upload sessions: POST (start, mount, single-POST), PATCH chunks, PUT to finish, GET status, DELETE.
import { RegistryError } from '../../oci/errors.js';
import { asDigest, type Digest } from '../../oci/digest.js';
import { isValidRepository } from '../../oci/reference.js';
import type { AppendOptions } from '../../storage/blob-store.js';
import type { RequestContext } from '../context.js';
import type { RegistryService } from '../service.js';
import { hasBody, sendEmpty } from '../respond.js';
import type { RegistryMetrics } from '../../server/metrics.js';

export function uploadHandlers(service: RegistryService, metrics: RegistryMetrics) {
  const uploadLocation = (repo: string, id: string) => `/v2/${repo}/blobs/uploads/${id}`;
  const blobLocation = (repo: string, digest: Digest) => `/v2/${repo}/blobs/${digest}`;
  const progressHeaders = (repo: string, id: string, size: number) => ({
    Location: uploadLocation(repo, id),
    Range: `0-${size > 0 ? size - 1 : 0}`,
    'Docker-Upload-UUID': id,
  });
  const created = (ctx: RequestContext, digest: Digest) =>
    sendEmpty(ctx.res, 201, { Location: blobLocation(ctx.route.repo, digest), 'Docker-Content-Digest': digest });

  /** Reads Content-Range / Content-Length of a chunk into append options. */
  const chunkOptions = (ctx: RequestContext): AppendOptions => {
    const opts: AppendOptions = { onBytes: (n) => metrics.blobBytesIn.inc(n) };
    const len = ctx.req.headers['content-length'];
    if (len !== undefined) opts.expectedLength = Number(len);
    const cr = ctx.req.headers['content-range'];
    if (cr !== undefined) {
      const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(cr.trim());
      if (!m) throw new RegistryError('BLOB_UPLOAD_INVALID', `malformed Content-Range "${cr}"; expected "<start>-<end>"`, { status: 416 });
      const start = Number(m[1]);
      const end = Number(m[2]);
      if (end < start) throw new RegistryError('BLOB_UPLOAD_INVALID', `Content-Range end ${end} is before start ${start}`, { status: 416 });
      if (opts.expectedLength !== undefined && opts.expectedLength !== end - start + 1) {
        throw new RegistryError('SIZE_INVALID', `Content-Range covers ${end - start + 1} bytes but Content-Length is ${opts.expectedLength}`);
      }
      opts.expectedOffset = start;
      opts.expectedLength = end - start + 1;
    }
    return opts;
  };


  return {
    async start(ctx: RequestContext): Promise<void> {
      const { route, query } = ctx;
      const mount = query.get('mount');
      if (mount !== null) {
        const digest = asDigest(mount);
        const from = query.get('from') ?? undefined;
        if (from !== undefined && !isValidRepository(from)) {
          throw new RegistryError('NAME_INVALID', `invalid "from" repository "${from.slice(0, 100)}"`);
        }
        if (await service.mountBlob(route.repo, digest, from)) return created(ctx, digest);
        // Spec: when a mount cannot be done, fall back to opening an ordinary upload session.
      }
      const algorithm = query.get('digest-algorithm');
      if (algorithm !== null && algorithm !== 'sha256' && algorithm !== 'sha512') {
        throw new RegistryError('DIGEST_INVALID', `unsupported digest-algorithm "${algorithm.slice(0, 20)}"; use sha256 or sha512`);
      }
      const digestParam = query.get('digest');
      const id = await service.startUpload(route.repo);
      if (digestParam !== null) {
        const digest = asDigest(digestParam);
        try {
          await service.finishUpload(route.repo, id, digest, { body: ctx.req, opts: chunkOptions(ctx) });
        } catch (err) {
          await service.cancelUpload(route.repo, id).catch(() => undefined);
          throw err;
        }
        return created(ctx, digest);
      }
      if (hasBody(ctx.req)) ctx.req.resume();
      sendEmpty(ctx.res, 202, { ...progressHeaders(route.repo, id, 0), 'OCI-Chunk-Min-Length': 0 });
    },

    async status(ctx: RequestContext): Promise<void> {
      const size = await service.uploadOffset(ctx.route.repo, ctx.route.ref);
      sendEmpty(ctx.res, 204, progressHeaders(ctx.route.repo, ctx.route.ref, size));
    },

    async patch(ctx: RequestContext): Promise<void> {
      const { route } = ctx;
      const opts = chunkOptions(ctx);
      const size = await service.appendUpload(route.repo, route.ref, ctx.req, opts);
      sendEmpty(ctx.res, 202, progressHeaders(route.repo, route.ref, size));
    },

    async finish(ctx: RequestContext): Promise<void> {
      const { route, query } = ctx;
      const d = query.get('digest');
      if (d === null) throw new RegistryError('DIGEST_INVALID', 'finishing an upload needs ?digest=<algorithm:hex> of the whole blob');
      const digest = asDigest(d);
      let finalChunk;
      if (hasBody(ctx.req)) {
        finalChunk = { body: ctx.req, opts: chunkOptions(ctx) };
      }
      await service.finishUpload(route.repo, route.ref, digest, finalChunk);
      created(ctx, digest);
    },

    async cancel(ctx: RequestContext): Promise<void> {
      await service.cancelUpload(ctx.route.repo, ctx.route.ref);
      sendEmpty(ctx.res, 204);
    },
  };
}
