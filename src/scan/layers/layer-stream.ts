// Opens a layer blob as a stream of uncompressed tar bytes: gzip (what nearly every image uses)
// or plain tar, detected from the blob's first bytes rather than trusted from the media type.
// zstd layers are reported as unsupported: Node 20 has no zstd decoder built in.
import { createGunzip, type Gunzip } from 'node:zlib';
import { pipeline } from 'node:stream';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Digest } from '../../oci/digest.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export class UnsupportedCompressionError extends Error {
  override readonly name = 'UnsupportedCompressionError';
}

export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export interface LayerStreamCounters {
  /** Bytes of the blob as stored (compressed). */
  compressedBytes: number;
  /** Bytes of tar handed to the reader. */
  tarBytes: number;
}

/**
 * Yields the layer's tar bytes chunk by chunk; closes the underlying streams when the consumer
 * stops early (the tar end marker usually comes before the gzip trailer).
 */
export async function* layerTarChunks(blobs: BlobStore, digest: Digest, counters: LayerStreamCounters): AsyncGenerator<Buffer, void, undefined> {
  const info = await blobs.stat(digest);
  if (!info) throw new Error(`layer ${digest} is not in the blob store`);
  if (info.size === 0) return;
  const compression = detectCompression(await readHead(blobs, digest, Math.min(info.size, 4)));
  if (compression === 'zstd') throw new UnsupportedCompressionError(`layer ${digest} is zstd-compressed: unsupported compression (not scanned)`);
  const raw = await blobs.read(digest);
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const c of raw) {
      counters.compressedBytes += (c as Buffer).length;
      yield c as Buffer;
    }
  }
  let out: AsyncIterable<unknown> = counted();
  let gunzip: Gunzip | undefined;
  if (compression === 'gzip') {
    gunzip = createGunzip({ chunkSize: 256 * 1024 });
    pipeline(out, gunzip, () => undefined); // errors surface through gunzip's iterator
    out = gunzip;
  }
  try {
    for await (const chunk of out) {
      counters.tarBytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  } finally {
    raw.destroy();
    gunzip?.destroy();
  }
}

async function readHead(blobs: BlobStore, digest: Digest, n: number): Promise<Buffer> {
  const s = await blobs.read(digest, { start: 0, end: n - 1 });
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
