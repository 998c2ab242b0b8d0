// Crash-safe writes of small files: a temp file beside the target, written and fsynced, then
// renamed over it, so readers see the old content or the new, never a torn file. The blob store
// and the metadata beside it (auth bootstrap, replication journal) share these.
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync a directory, so a rename into it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface AtomicWriteOptions {
  /** File mode, also forced on a temp file left over by a crash (open() applies it only on create). */
  mode?: number;
  /** Also fsync the directory after the rename (the new name itself survives a crash). */
  syncDir?: boolean;
}

/** Writes `content` to `file` through `<file>.<pid>.tmp`: fsync, rename, optionally fsync the directory. */
export async function writeFileAtomic(file: string, content: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', opts.mode);
  try {
    if (opts.mode !== undefined) await fh.chmod(opts.mode);
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  if (opts.syncDir) await fsyncDir(dirname(file));
}
