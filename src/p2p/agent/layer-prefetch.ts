// Manifest-driven prefetch: when an image manifest passes through the agent on its way to
// containerd, the agent starts swarm downloads of all of its blobs at once. containerd fetches
// at most max_concurrent_downloads (3) layers at a time, so without this a fleet pulling a
// 4-layer image finishes three layers together and then starts the fourth together: a second
// cold start of the swarm where nobody holds anything yet. `shoal sim` measured it on 10,000
// agents (scenarios/fleet-10k-preheat.yaml, layerConcurrency 3 vs all layers): 2.09x vs 1.83x
// the Kumar-Ross bound. The caller pulled the manifest with its own credentials, so it may read
// these blobs; serving them to anyone later is still authorised per request (authorizer.ts).
import { isDigest, type Digest } from '../../oci/digest.js';
import { isValidRepository } from '../../oci/reference.js';
import { parseManifest } from '../../oci/manifest.js';
import { IMAGE_MANIFEST_TYPES, baseMediaType } from '../../oci/media-types.js';

/** Manifests larger than this are not looked into (the registry's default limit is 8 MiB; images are KBs). */
export const PREFETCH_MANIFEST_LIMIT = 1024 * 1024;
/** Blobs of one manifest started at most (a pathological manifest must not start thousands of downloads). */
export const PREFETCH_MAX_BLOBS = 32;

export interface PrefetchTarget {
  digest: Digest;
  size: number;
}

/**
 * The blobs (config first, then layers, in manifest order) of an image manifest body, or none for
 * an index (containerd fetches the platform manifest next, through the agent), another artifact
 * type, an oversized or malformed body.
 */
export function blobsToPrefetch(body: Buffer, contentType: string | undefined): PrefetchTarget[] {
  if (body.length === 0 || body.length > PREFETCH_MANIFEST_LIMIT) return [];
  if (!IMAGE_MANIFEST_TYPES.has(baseMediaType(contentType))) return [];
  try {
    const m = parseManifest(body, contentType);
    if (m.kind !== 'image') return [];
    return m.blobs.slice(0, PREFETCH_MAX_BLOBS).map((d) => ({ digest: d.digest, size: d.size }));
  } catch {
    return [];
  }
}

/** A prefetch order from the scheduler's preheat job: { digest, repo, registry? }. Checked by hand: zod costs an agent ~8 MB. */
export function parsePrefetchOrder(body: unknown): { digest: Digest; repo: string } | { problems: string[] } {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof b.digest !== 'string' || !isDigest(b.digest)) problems.push('digest: not a digest');
  if (typeof b.repo !== 'string' || !isValidRepository(b.repo)) problems.push('repo: not a repository name');
  if (b.registry !== undefined && typeof b.registry !== 'string') problems.push('registry: not a string');
  return problems.length ? { problems } : { digest: b.digest as Digest, repo: b.repo as string };
}
