// Piece manifests: validation of what the scheduler hands out, piece geometry, and building a
// manifest from a verified blob in one streaming pass (seed side).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Hash } from 'node:crypto';
import { newHash, parseDigest, type Digest, type DigestAlgorithm } from '../../oci/digest.js';
import { pieceCount, pieceSizeFor, type PieceManifest } from '../protocol.js';
import { PeerError } from './errors.js';

/**
 * Reads from the cache (uploads, client streams, hashing) go in blocks of this size. A paced upload
 * or client stream holds about two blocks: at 1 MiB, 16 children held 30 MB of an agent's memory.
 */
export const READ_CHUNK = 256 * 1024;

/** Pieces are held in memory whole while in flight; refuse manifests that would make that absurd. */
export const MAX_PIECE_SIZE = 256 * 1024 * 1024;

/** Checks a manifest's shape and arithmetic; throws MANIFEST_INVALID. Returns it typed. */
export function validateManifest(value: unknown): PieceManifest {
  const m = value as Partial<PieceManifest> | null;
  const bad = (why: string): never => {
    throw new PeerError('MANIFEST_INVALID', `piece manifest is invalid: ${why}`);
  };
  if (typeof m !== 'object' || m === null) return bad('not an object');
  if (typeof m.digest !== 'string') return bad('digest missing');
  try {
    parseDigest(m.digest);
  } catch {
    bad(`digest "${String(m.digest).slice(0, 80)}" is malformed`);
  }
  if (!Number.isSafeInteger(m.size) || m.size! < 0) bad('size must be a non-negative integer');
  if (!Number.isSafeInteger(m.pieceSize) || m.pieceSize! <= 0 || m.pieceSize! > MAX_PIECE_SIZE) bad(`pieceSize must be an integer in 1..${MAX_PIECE_SIZE}`);
  if (!Array.isArray(m.pieceDigests)) return bad('pieceDigests missing');
  const n = pieceCount(m.size!, m.pieceSize!);
  if (m.pieceDigests.length !== n) bad(`expected ${n} piece digests, got ${m.pieceDigests.length}`);
  for (const d of m.pieceDigests) {
    if (typeof d !== 'string') bad('piece digest is not a string');
    try {
      parseDigest(d);
    } catch {
      bad(`piece digest "${String(d).slice(0, 80)}" is malformed`);
    }
  }
  return { digest: m.digest as Digest, size: m.size!, pieceSize: m.pieceSize!, pieceDigests: [...m.pieceDigests] };
}

export function sameManifest(a: PieceManifest, b: PieceManifest): boolean {
  return (
    a.digest === b.digest &&
    a.size === b.size &&
    a.pieceSize === b.pieceSize &&
    a.pieceDigests.length === b.pieceDigests.length &&
    a.pieceDigests.every((d, i) => d === b.pieceDigests[i])
  );
}

/** Byte offset and length of piece i (the last piece is short; a 0-byte blob has one empty piece). */
export function pieceBounds(m: Pick<PieceManifest, 'size' | 'pieceSize'>, index: number): { offset: number; length: number } {
  const offset = index * m.pieceSize;
  return { offset, length: Math.max(0, Math.min(m.pieceSize, m.size - offset)) };
}

/**
 * Hashes a blob as it streams past: the whole-blob digest plus sha256 per piece. Feed it bytes
 * in order with update(); finish() checks the result against the expected digest.
 */
export class ManifestHasher {
  private readonly whole: Hash;
  private readonly algorithm: DigestAlgorithm;
  private piece: Hash = newHash('sha256');
  private inPiece = 0;
  private total = 0;
  private readonly digests: Digest[] = [];

  constructor(
    private readonly expected: Digest,
    private readonly pieceSize: number,
  ) {
    this.algorithm = parseDigest(expected).algorithm;
    this.whole = newHash(this.algorithm);
    if (!Number.isSafeInteger(pieceSize) || pieceSize <= 0 || pieceSize > MAX_PIECE_SIZE) {
      throw new PeerError('MANIFEST_INVALID', `pieceSize must be an integer in 1..${MAX_PIECE_SIZE}`);
    }
  }

  get size(): number {
    return this.total;
  }

  update(chunk: Buffer): void {
    this.whole.update(chunk);
    this.total += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.pieceSize - this.inPiece, chunk.length - off);
      this.piece.update(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take));
      this.inPiece += take;
      off += take;
      if (this.inPiece === this.pieceSize) this.closePiece();
    }
  }

  /** Throws BLOB_DIGEST_MISMATCH when the bytes seen are not the expected blob. */
  finish(): PieceManifest {
    if (this.inPiece > 0 || this.digests.length === 0) this.closePiece();
    const actual: Digest = `${this.algorithm}:${this.whole.digest('hex')}`;
    if (actual !== this.expected) {
      throw new PeerError('BLOB_DIGEST_MISMATCH', `blob content hashes to ${actual}, not ${this.expected}`, { detail: { expected: this.expected, actual, size: this.total } });
    }
    return { digest: this.expected, size: this.total, pieceSize: this.pieceSize, pieceDigests: this.digests };
  }

  private closePiece(): void {
    this.digests.push(`sha256:${this.piece.digest('hex')}`);
    this.piece = newHash('sha256');
    this.inPiece = 0;
  }
}

/**
 * Builds the manifest of a blob already on disk, verifying its digest on the way (one read pass).
 * pieceSize defaults to protocol.ts's pieceSizeFor(size).
 */
export async function buildManifest(digest: Digest, file: string, pieceSize?: number): Promise<PieceManifest> {
  const size = (await stat(file)).size;
  const hasher = new ManifestHasher(digest, pieceSize ?? pieceSizeFor(size));
  for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) hasher.update(chunk as Buffer);
  return hasher.finish();
}
