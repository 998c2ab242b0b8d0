// Blob GET/HEAD (with Range) and DELETE.
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../../oci/errors.js';
import { asDigest } from '../../oci/digest.js';
import type { ByteRange } from '../../storage/blob-store.js';
import type { RequestContext } from '../context.js';
import type { RegistryService } from '../service.js';
import { API_VERSION_HEADER, sendEmpty } from '../respond.js';
import type { RegistryMetrics } from '../../server/metrics.js';

export function blobHandlers(service: RegistryService, metrics: RegistryMetrics) {
  return {
    async get(ctx: RequestContext): Promise<void> {
      const { req, res, route } = ctx;
      const digest = asDigest(route.ref);
      const isHead = req.method === 'HEAD';
      const blob = await service.statBlob(route.repo, digest, { touch: isHead });
      if (!blob) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${route.repo}`);
      const etag = `"${digest}"`;
      const headers: Record<string, string | number> = {
        ...API_VERSION_HEADER,
        'Content-Type': 'application/octet-stream',
        'Docker-Content-Digest': digest,
        ETag: etag,
        'Accept-Ranges': 'bytes',
        'Cache-Control': 'max-age=31536000, immutable',
      };
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      const range = parseRange(req.headers.range, blob.size);
      if (range === 'unsatisfiable') {
        throw new RegistryError('RANGE_INVALID', `requested range is not satisfiable for a blob of ${blob.size} bytes`, {
          headers: { 'Content-Range': `bytes */${blob.size}` },
        });
      }
      if (isHead) {
        res.writeHead(200, { ...headers, 'Content-Length': blob.size });
        res.end();
        return;
      }
      const writeHead = () => {
        if (range) res.writeHead(206, { ...headers, 'Content-Length': range.end - range.start + 1, 'Content-Range': `bytes ${range.start}-${range.end}/${blob.size}` });
        else res.writeHead(200, { ...headers, 'Content-Length': blob.size });
      };
      if (service.blobs.copyTo && (await service.blobs.stat(digest))) {
        writeHead();
        const sent = await service.blobs.copyTo(digest, res, range ?? undefined).catch((err) => {
          res.destroy();
          throw err;
        });
        res.end();
        metrics.blobBytesOut.inc(sent);
        return;
      }
      // Open before writing headers so a vanished file is a clean 404, not a broken 200.
      const stream = await service.blobs.read(digest, range ?? undefined);
      writeHead();
      let sent = 0;
      stream.on('data', (c: Buffer) => (sent += c.length));
      try {
        await pipeline(stream, res);
      } finally {
        metrics.blobBytesOut.inc(sent);
      }
    },

    async delete(ctx: RequestContext): Promise<void> {
      await service.deleteBlob(ctx.route.repo, asDigest(ctx.route.ref));
      sendEmpty(ctx.res, 202);
    },
  };
}

/**
 * Parses a single `bytes=` range. Returns null to serve the whole blob (no header, or a
 * multi-range we don't split), or 'unsatisfiable' for ranges outside the blob or reversed.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(',') ? null : 'unsatisfiable';
  const [, a, b] = m;
  if (a === '' && b === '') return 'unsatisfiable';
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || (b !== '' && Number(b) < start)) return 'unsatisfiable';
  return { start, end };
}
