// Checks and normal forms for what peers send, beyond the schema: manifest consistency and the
// canonical copy of a peer's self-description that the core stores and hands out.
import type { PeerInfo, PieceManifest } from '../protocol.js';
import { pieceCount } from '../protocol.js';
import { SchedulerError } from './errors.js';

/** Throws MANIFEST_INVALID unless the piece list matches size and pieceSize. */
export function checkManifest(m: PieceManifest): void {
  const { size, pieceSize, pieceDigests } = m;
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(pieceSize) || pieceSize <= 0) {
    throw new SchedulerError('MANIFEST_INVALID', 'size must be an integer >= 0 and pieceSize an integer > 0');
  }
  const want = pieceCount(size, pieceSize);
  if (pieceDigests.length !== want) {
    throw new SchedulerError('MANIFEST_INVALID', `expected ${want} piece digests for size ${size} and pieceSize ${pieceSize}, got ${pieceDigests.length}`);
  }
}

export function sameManifest(a: PieceManifest, b: PieceManifest): boolean {
  if (a.size !== b.size || a.pieceSize !== b.pieceSize || a.pieceDigests.length !== b.pieceDigests.length) return false;
  for (let i = 0; i < a.pieceDigests.length; i++) if (a.pieceDigests[i] !== b.pieceDigests[i]) return false;
  return true;
}

/** A copy with only the protocol's fields: what we store is what we hand out to other peers. */
export function normalizePeer(info: PeerInfo): PeerInfo {
  const { dc, zone, rack } = info.labels;
  return {
    id: info.id,
    url: info.url,
    role: info.role,
    labels: { ...(dc !== undefined ? { dc } : {}), ...(zone !== undefined ? { zone } : {}), ...(rack !== undefined ? { rack } : {}) },
    ...(info.uploadBps !== undefined ? { uploadBps: info.uploadBps } : {}),
  };
}
