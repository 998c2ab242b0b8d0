// zod schemas for the scheduler's request bodies (the types in ../protocol.ts, checked at the
// edge). Unknown fields are stripped; sizes are bounded so one request cannot grow our maps much.
import { z } from 'zod';
import { isDigest, type Digest } from '../../oci/digest.js';
import type { AnnounceRequest, HeartbeatRequest, PeerInfo, PieceManifest } from '../protocol.js';

const digest = z
  .string()
  .max(200)
  .refine(isDigest, { message: 'must be a digest such as sha256:<64 lowercase hex>' })
  .transform((v) => v as Digest);

/** Printable ASCII without spaces: labels end up in map keys and metrics, never NULs or newlines. */
const label = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'must be 1-128 printable ASCII characters without spaces');

const httpUrl = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without credentials, e.g. http://10.0.0.5:4001');

export const peerInfoSchema = z.object({
  id: z.string().min(1).max(256),
  url: httpUrl,
  role: z.enum(['seed', 'agent']),
  labels: z.object({ dc: label.optional(), zone: label.optional(), rack: label.optional() }).default({}),
  uploadBps: z.number().positive().max(1e13).optional(),
}) satisfies z.ZodType<PeerInfo, unknown>;

export const announceSchema = z.object({
  peer: peerInfoSchema,
  task: z.object({
    digest,
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    repo: z.string().min(1).max(255).optional(),
  }),
  state: z.enum(['started', 'downloading', 'done', 'failed', 'left']),
  completedPieces: z.number().int().min(0).max(1e9),
  badPeers: z
    .array(z.object({ peerId: z.string().min(1).max(256), reason: z.enum(['corrupt-piece', 'unreachable', 'slow', 'refused']), detail: z.string().max(1024).optional() }))
    .max(64)
    .optional(),
  releasedParents: z.array(z.string().min(1).max(256)).max(64).optional(),
  wantParents: z.number().int().min(0).max(64),
}) satisfies z.ZodType<AnnounceRequest, unknown>;

export const heartbeatSchema = z.object({
  peer: peerInfoSchema,
  completeTasks: z.array(digest).max(100_000).optional(),
  uploading: z.number().int().min(0).max(1_000_000).optional(),
}) satisfies z.ZodType<HeartbeatRequest, unknown>;

export const pieceManifestSchema = z.object({
  digest,
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  pieceSize: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  pieceDigests: z.array(digest).max(1_000_000),
}) satisfies z.ZodType<PieceManifest, unknown>;

/**
 * POST tasks/{digest}/pieces. protocol.ts's body is the bare manifest, which does not say who
 * publishes it; a seed may name itself in `peerId` (an additive field) or an X-Shoal-Peer-Id
 * header, else the server attributes it to a live seed holding the blob (see server.ts).
 */
export const publishPiecesSchema = pieceManifestSchema.extend({ peerId: z.string().min(1).max(256).optional() });

/** "peer.url: must be ...; wantParents: Too big" — one line naming every bad field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`)
    .join('; ');
}
