// The P2P wire contract shared by the scheduler, seed peers and agents. Plain HTTP/1.1 + JSON
// (piece bodies are raw bytes). Every control-plane and peer-to-peer request carries
// `Authorization: Bearer <cluster token>` when the cluster has one (--cluster-token /
// SHOAL_CLUSTER_TOKEN); the registry-facing /v2/ API of an agent is authorised by the registry.
//
// Scale rule: the scheduler sees announces (per peer per task, every few seconds), never
// per-piece events. Peers learn who has which piece from their parents' bitfields and choose
// pieces themselves (rarest first, endgame at the tail).
import type { Digest } from '../oci/digest.js';

export type PeerRole = 'seed' | 'agent';

/** Topology labels, most significant first; parents that share more of them are preferred. */
export interface Locality {
  dc?: string;
  zone?: string;
  rack?: string;
}

/**
 * 0 = different dc, 1 = same dc, 2 = same zone, 3 = same rack. Labels are compared most
 * significant first and the count stops at the first difference, so two racks called "r1" in
 * different zones never count as the same rack. Missing labels compare equal to missing labels:
 * a flat cluster without labels is one big rack, which ranks everyone alike.
 */
export function localityLevel(a: Locality, b: Locality): 0 | 1 | 2 | 3 {
  if (a.dc !== b.dc) return 0;
  if (a.zone !== b.zone) return 1;
  if (a.rack !== b.rack) return 2;
  return 3;
}

export interface PeerInfo {
  /** Stable, unique per process (e.g. hostname + listen address). */
  id: string;
  /** Base URL where the peer serves the /p2p/v1 data plane, e.g. http://127.0.0.5:4001 */
  url: string;
  role: PeerRole;
  labels: Locality;
  /** Upload capacity in bytes/s if capped (helps load-aware parent choice). */
  uploadBps?: number;
}

/** Piece digests come from the seed (which verified the whole blob first) via the scheduler. */
export interface PieceManifest {
  digest: Digest;
  size: number;
  pieceSize: number;
  /** sha256:<hex> of each piece, in order; length = ceil(size / pieceSize). */
  pieceDigests: Digest[];
}

export type TaskState = 'started' | 'downloading' | 'done' | 'failed' | 'left';

export interface BadPeerReport {
  peerId: string;
  reason: 'corrupt-piece' | 'unreachable' | 'slow' | 'refused';
  detail?: string;
}

/** POST /scheduler/v1/announce */
export interface AnnounceRequest {
  peer: PeerInfo;
  task: { digest: Digest; size?: number; repo?: string };
  state: TaskState;
  /** Pieces this peer holds (a count, not a list: the scheduler does not track pieces). */
  completedPieces: number;
  /** Parents the peer wants replaced, and why. */
  badPeers?: BadPeerReport[];
  /**
   * Parents the peer let go of through no fault of theirs (they had nothing it lacked for a
   * while): the scheduler frees their child slots and does not hand them back to this peer for a
   * short time, without counting anything against them. Additive: an older scheduler ignores it
   * (and frees the slots when the peer's recorded parents exceed maxParents + 2).
   */
  releasedParents?: string[];
  /**
   * How many MORE parents the peer would like (0 = just a progress report). The scheduler returns
   * only new parents; a peer keeps the ones it has until it reports them in badPeers.
   */
  wantParents: number;
}

export interface AnnounceResponse {
  parents: PeerInfo[];
  /** Present once a seed has fetched and verified the blob. */
  pieces?: PieceManifest;
  /** Next announce no sooner than this (the scheduler sheds load by raising it). */
  announceIntervalMs: number;
  /** Sent when the scheduler is over its announce budget: spread an early announce for swapping idle parents over up to this many ms. */
  swapSpreadMs?: number;
  /** The scheduler found no seed that can serve this task: fetch from the registry yourself. */
  backToSource: boolean;
}

/** POST /scheduler/v1/heartbeat: peers (seeds in particular) register and stay alive. */
export interface HeartbeatRequest {
  peer: PeerInfo;
  /** Tasks this peer has complete (seeds: everything they fetched). */
  completeTasks?: Digest[];
  /**
   * Pieces this peer is uploading right now. A seed that children report unreachable but that is
   * serving some is congested, not cut off, and stays a source (origin.ts hasSource).
   */
  uploading?: number;
}

/** POST /scheduler/v1/tasks/{digest}/pieces: a seed publishes a verified piece manifest. */
export type PublishPiecesRequest = PieceManifest & {
  /** The publishing seed (it must have registered by heartbeat). */
  peerId?: string;
};

/** POST {seed}/seed/v1/fetch: the scheduler (or preheat) asks a seed to fetch a blob from the registry. */
export interface SeedFetchRequest {
  digest: Digest;
  repo: string;
  /** Registry base URL, e.g. http://127.0.0.1:5000 (defaults to the seed's --registry). */
  registry?: string;
}

/** POST /scheduler/v1/preheat */
export interface PreheatRequest {
  /** repo:tag or repo@digest (image index -> every platform's layers). */
  image: string;
  scope: 'seed' | 'all';
  /** Registry base URL; defaults to the scheduler's --registry. */
  registry?: string;
  /** Authorization header value for the registry, if the image is private. */
  authorization?: string;
}

export interface PreheatStatus {
  id: string;
  image: string;
  scope: 'seed' | 'all';
  state: 'resolving' | 'running' | 'done' | 'failed';
  error?: string;
  blobs: Array<{ digest: Digest; size: number; seedsDone: number; agentsDone: number; agentsTotal: number }>;
  startedAt: number;
  finishedAt?: number;
}

/**
 * GET {peer}/p2p/v1/tasks/{digest}/bitfield[?since=N&waitMs=M][&view=V] (long-poll until count >
 * since, or, from a super-seeding seed, until its view is no longer version V).
 */
export interface BitfieldResponse {
  /** base64 of a big-endian bitfield, bit i = piece i held (from a super-seeding seed: shown). */
  bitfield: string;
  count: number;
  total: number;
  /** A super-seeding seed's view version (peer/seed-view.ts): pass it back as `view` to wait for the next one. */
  view?: number;
}

/** Where an agent takes prefetch orders from the scheduler's preheat jobs (`--scope all`). */
export const AGENT_PREFETCH_PATH = '/agent/v1/prefetch';

/** Header naming the requesting peer's id on /p2p/v1 requests (lower case, as node:http names headers): a seed serves one piece at a time per child by it. */
export const PEER_ID_HEADER = 'x-shoal-peer';

export const PATHS = {
  announce: '/scheduler/v1/announce',
  heartbeat: '/scheduler/v1/heartbeat',
  publishPieces: (digest: string) => `/scheduler/v1/tasks/${digest}/pieces`,
  task: (digest: string) => `/scheduler/v1/tasks/${digest}`,
  preheat: '/scheduler/v1/preheat',
  preheatStatus: (id: string) => `/scheduler/v1/preheat/${id}`,
  seedFetch: '/seed/v1/fetch',
  bitfield: (digest: string) => `/p2p/v1/tasks/${digest}/bitfield`,
  /** GET, raw bytes; `?held=N` (pieces of the task the child holds) weights its share of a capped uplink. */
  piece: (digest: string, index: number) => `/p2p/v1/tasks/${digest}/pieces/${index}`,
} as const;

const MiB = 1024 * 1024;

/** Dragonfly's rule: next_pow2(size / 500) clamped to [4 MiB, 64 MiB]. */
export function pieceSizeFor(size: number, min = 4 * MiB, max = 64 * MiB): number {
  let p = min;
  const target = size / 500;
  while (p < target && p < max) p *= 2;
  return p;
}

export function pieceCount(size: number, pieceSize: number): number {
  return Math.max(1, Math.ceil(size / pieceSize));
}
