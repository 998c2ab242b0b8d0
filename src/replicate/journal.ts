// Where a resumable blob upload stands on a target: its upload URL and the offset the target
// confirmed. Written after every acknowledged chunk, crash-safely (tmp → fsync → rename), so a
// replicator killed mid-blob resumes from the target's status instead of re-sending.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../storage/durable-file.js';

export interface UploadState {
  /** Upload URL as the target last returned it (Distribution rotates its `_state` per chunk). */
  location: string;
  /** Bytes the target confirmed (its Range end + 1). */
  offset: number;
  size: number;
  updatedAt: number;
}

export interface UploadJournal {
  get(key: string): Promise<UploadState | null>;
  put(key: string, state: UploadState): Promise<void>;
  delete(key: string): Promise<void>;
}

/** One small JSON file per upload in `dir`. */
export class FileUploadJournal implements UploadJournal {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly dir: string) {}

  private file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.json`);
  }

  async get(key: string): Promise<UploadState | null> {
    try {
      const entry = JSON.parse(await readFile(this.file(key), 'utf8')) as UploadState & { key: string };
      return entry.key === key ? entry : null;
    } catch {
      return null; // absent or torn: start afresh
    }
  }

  async put(key: string, state: UploadState): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true });
    await this.ready;
    await writeFileAtomic(this.file(key), JSON.stringify({ key, ...state }));
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }
}

/** For tests and one-shot copies that need no resume. */
export class MemoryUploadJournal implements UploadJournal {
  readonly entries = new Map<string, UploadState>();
  async get(key: string) {
    return this.entries.get(key) ?? null;
  }
  async put(key: string, state: UploadState) {
    this.entries.set(key, { ...state });
  }
  async delete(key: string) {
    this.entries.delete(key);
  }
}
