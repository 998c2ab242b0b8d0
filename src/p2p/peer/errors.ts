// Typed errors of the peer library. Callers branch on `code` (PeerError) or `kind`
// (PeerTransportError), never on message text.

export type PeerErrorCode =
  /** A piece's bytes do not hash to the manifest's piece digest (a lying or broken parent). */
  | 'PIECE_DIGEST_MISMATCH'
  /** A piece has the wrong length for its index. */
  | 'PIECE_SIZE_MISMATCH'
  | 'PIECE_OUT_OF_RANGE'
  /** The piece (or blob) is not held here. */
  | 'PIECE_NOT_HELD'
  /** Every piece verified but the whole blob does not hash to the manifest's digest: the manifest is wrong. */
  | 'BLOB_DIGEST_MISMATCH'
  /** finalize() found pieces on disk that no longer match (crash, disk fault); they were cleared for re-fetch. */
  | 'PIECES_CORRUPT_ON_DISK'
  | 'TASK_INCOMPLETE'
  | 'TASK_CLOSED'
  | 'MANIFEST_INVALID'
  | 'BITFIELD_INVALID'
  | 'BLOB_UNKNOWN'
  | 'SIZE_MISMATCH'
  /** Downloader: no new piece for stallTimeoutMs, or no manifest for manifestTimeoutMs. */
  | 'STALLED'
  | 'ABORTED'
  /** Downloader: anything else (a disk error such as ENOSPC, a closed task); see the cause. */
  | 'DOWNLOAD_FAILED';

export class PeerError extends Error {
  readonly code: PeerErrorCode;
  readonly detail: unknown;

  constructor(code: PeerErrorCode, message: string, opts: { detail?: unknown; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'PeerError';
    this.code = code;
    this.detail = opts.detail;
  }
}

export const isPeerError = (e: unknown, code?: PeerErrorCode): e is PeerError => e instanceof PeerError && (code === undefined || e.code === code);

/**
 * How a request to another peer failed; the downloader maps each kind to an action:
 * unreachable/timeout → drop the parent; not-found → the parent lacks it (yet); busy → back off;
 * refused → drop; protocol → the parent sent something impossible (treated like a corrupt piece).
 */
export type TransportErrorKind = 'unreachable' | 'timeout' | 'not-found' | 'busy' | 'refused' | 'protocol' | 'aborted';

export class PeerTransportError extends Error {
  readonly kind: TransportErrorKind;
  readonly status: number | undefined;

  constructor(kind: TransportErrorKind, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'PeerTransportError';
    this.kind = kind;
    this.status = opts.status;
  }
}

export const isTransportError = (e: unknown, kind?: TransportErrorKind): e is PeerTransportError =>
  e instanceof PeerTransportError && (kind === undefined || e.kind === kind);
