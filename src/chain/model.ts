// Chain definitions, runs and gate policies: plain data, validated with zod at the API edge.
// A chain is attached to repository glob patterns and triggered by pushes whose tag matches.
import { z } from 'zod';
import type { Digest } from '../oci/digest.js';
import { SEVERITY_ORDER, type Finding, type Severity } from '../scan/scanner.js';

export const STAGE_NAMES = ['scan', 'gate', 'replicate', 'preheat', 'notify'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

const stageControl = {
  enabled: z.boolean().default(true),
  /** Attempts after the first one. */
  retries: z.number().int().min(0).max(20).default(2),
  /** First back-off; doubles per attempt (with jitter), capped at 60 s. */
  backoffMs: z.number().int().min(0).max(600_000).default(1_000),
  timeoutMs: z.number().int().min(100).max(24 * 3_600_000).default(30 * 60_000),
};

export const replicationTargetSchema = z.object({
  name: z.string().min(1).max(100),
  /** Base URL of the target registry, e.g. http://registry-eu:5000 */
  url: z.string().url(),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Only repositories / tags matching one of these globs go to this target (default: all). */
  repositories: z.array(z.string().min(1)).default(['**']),
  tags: z.array(z.string().min(1)).default(['*']),
  /** Name rewriting: strip `stripPrefix`, then prepend `prefix` (e.g. team/app -> mirror/app). */
  rewrite: z.object({ stripPrefix: z.string().default(''), prefix: z.string().default('') }).default({ stripPrefix: '', prefix: '' }),
  /** Blobs copied in parallel. */
  concurrency: z.number().int().min(1).max(32).default(3),
  /** Chunk size of resumable uploads (bytes). */
  chunkSize: z.number().int().min(64 * 1024).max(1024 ** 3).default(16 * 1024 ** 2),
});
export type ReplicationTarget = z.output<typeof replicationTargetSchema>;

export const preheatClusterSchema = z.object({
  name: z.string().min(1).max(100),
  /** Scheduler base URL, e.g. http://scheduler-eu:4000 */
  scheduler: z.string().url(),
  scope: z.enum(['seed', 'all']).default('seed'),
  /** Registry the seeds fetch from (defaults to the scheduler's --registry). */
  registry: z.string().url().optional(),
  /** Image name as that registry knows it (a replication target's rewritten name): "{repo}" is replaced. */
  repository: z.string().default('{repo}'),
  clusterToken: z.string().optional(),
});
export type PreheatCluster = z.output<typeof preheatClusterSchema>;

export const webhookSchema = z.object({
  url: z.string().url(),
  /** HMAC-SHA256 key; the signature of the raw body goes in X-Shoal-Signature: sha256=<hex>. */
  secret: z.string().min(1).optional(),
  /** Event types to send (default all): chain.run.started, chain.stage.finished, chain.run.blocked, chain.run.succeeded, chain.run.failed */
  events: z.array(z.string()).optional(),
});
export type Webhook = z.output<typeof webhookSchema>;

export const chainSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, ".", "_", "-"; at most 63'),
  /** Repository globs: "team/*" (one level), "team/**" (any depth), "team/app". */
  repositories: z.array(z.string().min(1)).min(1),
  /** Tag globs a push must match to trigger the chain ("*" = any tag; digest-only pushes never trigger). */
  tags: z.array(z.string().min(1)).default(['*']),
  /** Whether pushes trigger it; manual runs work either way. */
  onPush: z.boolean().default(true),
  scan: z.object(stageControl).default(() => ({ enabled: true, retries: 2, backoffMs: 1_000, timeoutMs: 30 * 60_000 })),
  gate: z
    .object({
      ...stageControl,
      /**
       * What the gate does when a policy covers the repository but there is no scan result (scan
       * stage off, no scanner in this process): 'block' (default; the image is blocked like a
       * vulnerable one), 'fail' (the run fails, nothing recorded), 'pass' (fail open, logged).
       */
      unscanned: z.enum(['block', 'fail', 'pass']).default('block'),
    })
    .default(() => ({ enabled: true, retries: 0, backoffMs: 1_000, timeoutMs: 60_000, unscanned: 'block' as const })),
  replicate: z
    .object({
      ...stageControl,
      targets: z.array(replicationTargetSchema).default([]),
      /** Full sync of every matching tag to every target this often (ms); 0 = only on pushes. */
      syncIntervalMs: z.number().int().min(0).default(0),
    })
    .default(() => ({ enabled: true, retries: 3, backoffMs: 2_000, timeoutMs: 6 * 3_600_000, targets: [], syncIntervalMs: 0 })),
  preheat: z
    .object({ ...stageControl, clusters: z.array(preheatClusterSchema).default([]) })
    .default(() => ({ enabled: true, retries: 2, backoffMs: 2_000, timeoutMs: 30 * 60_000, clusters: [] })),
  notify: z
    .object({ ...stageControl, webhooks: z.array(webhookSchema).default([]) })
    .default(() => ({ enabled: true, retries: 5, backoffMs: 1_000, timeoutMs: 5 * 60_000, webhooks: [] })),
});
export type ChainDefinition = z.output<typeof chainSchema>;
export type ChainInput = z.input<typeof chainSchema>;
export type StageControl = Pick<ChainDefinition['scan'], 'enabled' | 'retries' | 'backoffMs' | 'timeoutMs'>;

export const gatePolicySchema = z.object({
  /** Repository namespace ("team" covers team/app and team/x/y); "" is the instance-wide default. */
  namespace: z.string().max(255),
  /** Block when any finding is at or above this severity. */
  severity: z.enum(SEVERITY_ORDER as [Severity, ...Severity[]]),
  /** Accepted advisory ids (or aliases): never block on these. */
  allow: z.array(z.string().min(1)).default([]),
});
export type GatePolicy = z.output<typeof gatePolicySchema>;

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'blocked';
export type StageStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'blocked';

export interface StageRun {
  name: StageName;
  status: StageStatus;
  attempts: number;
  startedAt?: number;
  finishedAt?: number;
  /** Work done / total (bytes for replicate and preheat, manifests for scan). */
  progress?: { done: number; total: number; unit: string };
  error?: string;
  /** What later stages (or a resumed run) need from this one: scan findings, replicated digests. */
  output?: unknown;
}

export interface Run {
  id: string;
  chain: string;
  repo: string;
  digest: Digest;
  tag?: string;
  /** 'sync': started by a full sync for an image no run of the chain had cleared yet. */
  trigger: 'push' | 'manual' | 'sync';
  status: RunStatus;
  /** Why it was blocked or failed. */
  reason?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  stages: StageRun[];
}

export interface LogLine {
  seq: number;
  runId: string;
  at: number;
  stage: StageName | 'run';
  message: string;
}

export interface BlockedImage {
  repo: string;
  digest: Digest;
  policy: string;
  findings: Array<Pick<Finding, 'id' | 'severity'> & { package: string }>;
  blockedAt: number;
  runId: string;
  /** Why, when it is not the findings (e.g. not scanned while a policy covers the repository). */
  reason?: string;
}

export const isFinished = (s: RunStatus) => s === 'succeeded' || s === 'failed' || s === 'blocked';

/**
 * Glob over "/"-separated names: "*" matches within one component, "**" any number of
 * components, "?" one character. Anchored on both ends.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '/' && glob.slice(i + 1) === '**') {
      re += '(?:/.*)?';
      break;
    }
    if (c === '*' && glob[i + 1] === '*') {
      // "a/**" also matches "a" itself; "**/b" also "b".
      if (glob[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function matchesAny(globs: readonly string[], value: string): boolean {
  return globs.some((g) => globToRegExp(g).test(value));
}

/** Does a push of `repo` with these tags trigger the chain? (Manual runs skip this.) */
export function chainMatchesPush(chain: ChainDefinition, repo: string, tags: readonly string[]): string | undefined {
  if (!chain.onPush || !matchesAny(chain.repositories, repo)) return undefined;
  return tags.find((t) => matchesAny(chain.tags, t));
}

export function severityAtLeast(s: Severity, threshold: Severity): boolean {
  return SEVERITY_ORDER.indexOf(s) >= SEVERITY_ORDER.indexOf(threshold);
}
