// skopeo with a private blob-info cache per instance.
//
// skopeo has no flag for its blob-info cache; as root it always uses
// /var/lib/containers/cache/blob-info-cache-v1.boltdb, shared by every run on
// the machine, and that cache makes skopeo mount blobs it has seen elsewhere
// instead of uploading them. Unprivileged, it uses $XDG_DATA_HOME/containers/cache.
// So, as root, we run skopeo in a fresh user namespace (`unshare --user`, no
// mapping): it sees itself as uid 65534 and takes the XDG path, while file
// access still happens with our real credentials. Where user namespaces are
// unavailable we fall back to running it directly (shared cache).
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isRoot, run, tempDir, which, type RunOptions, type RunResult } from './tools.js';

let userNsWorks: boolean | undefined;
function canUnshareUser(): boolean {
  if (userNsWorks === undefined) {
    const unshare = which('unshare');
    userNsWorks = !!unshare && spawnSync(unshare, ['--user', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  }
  return userNsWorks;
}

export interface Skopeo {
  /** Holds HOME, XDG dirs, TMPDIR and the blob-info cache of this instance. */
  home: string;
  /** True when the cache really is private (see the module comment). */
  privateCache: boolean;
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
}

/** A skopeo whose blob-info cache lives under a new dir inside `parent` (or a new temp dir). */
export async function makeSkopeo(parent?: string): Promise<Skopeo> {
  const bin = which('skopeo');
  if (!bin) throw new Error('skopeo not installed');
  const home = parent ? join(parent, `skopeo-${Math.random().toString(36).slice(2, 10)}`) : await tempDir('skopeo');
  for (const d of ['share', 'config', 'run', 'tmp']) await mkdir(join(home, d), { recursive: true, mode: 0o700 });
  const env = {
    HOME: home,
    XDG_DATA_HOME: join(home, 'share'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_RUNTIME_DIR: join(home, 'run'),
    TMPDIR: join(home, 'tmp'),
  };
  const userns = isRoot && canUnshareUser();
  const privateCache = !isRoot || userns;
  return {
    home,
    privateCache,
    run(args, opts = {}) {
      const merged = { ...opts, env: { ...env, ...opts.env } };
      return userns ? run('unshare', ['--user', bin, ...args], merged) : run(bin, args, merged);
    },
  };
}

/** The blob-info cache file a Skopeo instance uses (exists after its first copy). */
export function blobInfoCachePath(s: Skopeo): string {
  return join(s.home, 'share', 'containers', 'cache', 'blob-info-cache-v1.boltdb');
}
