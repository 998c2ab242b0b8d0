// What a blob download (TaskDownloader, ./downloader.ts) talks to and what it reports: the seams the
// agent, the seed and the fleet simulator plug into (scheduler client, peer transport, the store
// it writes into), and the stats, result, error and events a caller sees.
import type { Digest } from '../../oci/digest.js';
import type { AnnounceRequest, AnnounceResponse, BadPeerReport, BitfieldResponse, PeerInfo, PieceManifest, TaskState } from '../protocol.js';
import { PeerError, type PeerErrorCode } from './errors.js';

export interface SchedulerClient {
  announce(req: AnnounceRequest, signal?: AbortSignal): Promise<AnnounceResponse>;
}

export interface PeerTransport {
  /**
   * GET {parent}/p2p/v1/tasks/{digest}/bitfield; with `since`, the parent may hold the reply up to
   * waitMs until it has more, or (`view`, a super-seeding seed's last view version) until its view changes.
   */
  bitfield(parent: PeerInfo, digest: Digest, since?: number, waitMs?: number, signal?: AbortSignal, view?: number): Promise<BitfieldResponse>;
  /**
   * GET {parent}/p2p/v1/tasks/{digest}/pieces/{index}: the raw piece (unverified). Throw
   * PeerTransportError. `held`: pieces of the task we hold (the parent weights its uplink by it).
   */
  piece(parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal, expectedSize?: number, held?: number): Promise<Buffer>;
  /** Optional: the downloader is done with a buffer piece() returned (it may be reused). */
  release?(buf: Buffer): void;
  /**
   * Optional streaming form of piece(): the body as it arrives. Used when the target has
   * writePieceStream, so pieces go to disk without being held in memory whole. Errors while
   * iterating are transport errors; aborting `signal` must end the iteration.
   */
  pieceStream?(parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal, expectedSize: number, held?: number): Promise<AsyncIterable<Buffer>>;
}

/** What the downloader writes into (PieceTask implements it; a simulator may fake it). */
export interface DownloadTarget {
  readonly bitfield: { has(index: number): boolean; readonly count: number; isComplete(): boolean };
  readonly isComplete: boolean;
  /** Verifies and stores a piece; false if already held; PeerError PIECE_DIGEST_MISMATCH / PIECE_SIZE_MISMATCH when bad. */
  writePiece(index: number, data: Buffer): Promise<boolean>;
  /** Optional streaming form of writePiece (PieceTask has it); same verification, same errors. */
  writePieceStream?(index: number, source: AsyncIterable<Uint8Array>): Promise<boolean>;
  /** Verifies the whole blob and makes it final; returns its path. */
  finalize(): Promise<string>;
  failWaiters?(err: Error): void;
}

/** Opens the download target once the manifest is known (PieceStore implements it). */
export interface TaskOpener {
  openTask(manifest: PieceManifest): Promise<DownloadTarget>;
}

export interface PeerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DownloadStats {
  bytesFromPeers: number;
  bytesFromSeed: number;
  /** Verified bytes that arrived for pieces already held (endgame duplicates). */
  wastedBytes: number;
  corruptPieces: number;
  /** Distinct parents that delivered at least one verified piece. */
  parentsUsed: number;
  parentsDropped: number;
  piecesFetched: number;
  /** Pieces already on disk when the download started (resumed). */
  piecesResumed: number;
  announces: number;
  bytesByParent: Record<string, number>;
  durationMs: number;
}

export type DownloadResult =
  | { outcome: 'done'; digest: Digest; manifest: PieceManifest; path: string; stats: DownloadStats }
  /** The scheduler has no seed for this blob: fetch it from the registry yourself (and then become a parent). */
  | { outcome: 'back-to-source'; digest: Digest; manifest?: PieceManifest; stats: DownloadStats };

export class DownloadError extends PeerError {
  readonly stats: DownloadStats;
  constructor(code: PeerErrorCode, message: string, stats: DownloadStats, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'DownloadError';
    this.stats = stats;
  }
}

export interface DownloaderEvents {
  manifest: [manifest: PieceManifest];
  piece: [ev: { index: number; parentId: string; bytes: number; completed: number; total: number }];
  parent: [ev: { parentId: string; change: 'added' | 'dropped' | 'released'; reason?: BadPeerReport['reason']; detail?: string }];
  announce: [ev: { state: TaskState; ok: boolean; parents: number; wantParents: number }];
}
