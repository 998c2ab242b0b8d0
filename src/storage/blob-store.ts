// The narrow storage seam. Every driver (filesystem today, S3 next) implements this
// and passes the shared suite in test/unit/storage/blob-store.suite.ts.
import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../oci/digest.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
  modifiedAt: Date;
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface UploadInfo {
  id: string;
  size: number;
  startedAt: Date;
}

export interface AppendOptions {
  /** The offset the caller believes the upload is at; a mismatch throws RANGE_INVALID and writes nothing. */
  expectedOffset?: number;
  /** Exactly this many bytes must arrive, or the append is rolled back (truncated uploads). */
  expectedLength?: number;
  /** Hard cap on the upload's total size. */
  maxTotalSize?: number;
  /** Called with each chunk's length as it is written (metrics, progress). */
  onBytes?: (n: number) => void;
}

export interface BlobStore {
  /** null when absent. */
  stat(digest: Digest): Promise<BlobInfo | null>;
  /** Stream the blob (or a byte range of it). Throws BLOB_UNKNOWN when absent. */
  read(digest: Digest, range?: ByteRange): Promise<Readable>;
  readAll(digest: Digest): Promise<Buffer>;
  /**
   * Optional fast path: writes the blob (or a range) to `out` reusing two buffers, each refilled
   * only after its write completed; returns bytes written. Drivers without it are read via read().
   * `out` must be done with a chunk when its write callback fires (sockets and files are; a
   * PassThrough is not, it keeps the reference).
   */
  copyTo?(digest: Digest, out: Writable, range?: ByteRange): Promise<number>;
  /** Store small content (manifests) atomically after verifying it hashes to `digest`. */
  put(digest: Digest, data: Uint8Array): Promise<void>;
  /** true when something was removed. */
  delete(digest: Digest): Promise<boolean>;
  list(): AsyncIterable<BlobInfo>;

  createUpload(id: string): Promise<void>;
  /** Appends the stream to the upload; returns the upload's new size. */
  appendUpload(id: string, source: Readable, opts?: AppendOptions): Promise<number>;
  /** null when there is no such upload. */
  uploadSize(id: string): Promise<number | null>;
  /**
   * Verifies the upload hashes to `expected`, then makes it visible as that blob in one atomic step.
   * Throws DIGEST_INVALID (the upload stays, so the client may retry) or BLOB_UPLOAD_UNKNOWN.
   */
  commitUpload(id: string, expected: Digest): Promise<BlobInfo>;
  abortUpload(id: string): Promise<void>;
  listUploads(): AsyncIterable<UploadInfo>;
  close?(): Promise<void>;
}
