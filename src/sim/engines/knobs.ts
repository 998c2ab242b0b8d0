// TaskDownloader's numeric options as the real code resolves them, so the thin engine follows
// the same settings as the downloader engine, and a scenario can override any of them under
// `downloader:`. The defaults are read from a real TaskDownloader (its resolved options) rather
// than copied here: when someone retunes downloader.ts, the simulation follows on the next run.
// If that ever stops working (the field is renamed), the copy below is used and says so.
import { TaskDownloader, type TaskDownloaderOptions } from '../../p2p/peer/downloader.js';
import type { Digest } from '../../oci/digest.js';

const MiB = 1024 * 1024;

export interface DownloaderKnobs {
  wantParents: number;
  minParents: number;
  maxParents: number;
  maxInFlight: number;
  maxInFlightBytes: number;
  perParentLimit: number;
  seedParentLimit: number;
  bitfieldWaitMs: number;
  pieceTimeoutBaseMs: number;
  pieceTimeoutMinBps: number;
  stallTimeoutMs: number;
  manifestTimeoutMs: number;
  earlyAnnounceGapMs: number;
  banMs: number;
  busyBackoffMs: number;
  idleParentMs: number;
}

const KEYS: Array<keyof DownloaderKnobs> = [
  'wantParents', 'minParents', 'maxParents', 'maxInFlight', 'maxInFlightBytes', 'perParentLimit', 'seedParentLimit', 'bitfieldWaitMs',
  'pieceTimeoutBaseMs', 'pieceTimeoutMinBps', 'stallTimeoutMs', 'manifestTimeoutMs', 'earlyAnnounceGapMs', 'banMs', 'busyBackoffMs',
  'idleParentMs',
];

/** Where the defaults came from: the real TaskDownloader, or this file's copy (then say so in results). */
export let knobsSource: 'downloader.ts' | 'copy' = 'downloader.ts';

export function checkDownloaderOptions(over: Record<string, number>): void {
  for (const k of Object.keys(over)) if (!(KEYS as string[]).includes(k)) throw new Error(`downloader.${k}: not a TaskDownloader option (known: ${KEYS.join(', ')})`);
}

export function downloaderDefaults(over: Record<string, number>): DownloaderKnobs {
  checkDownloaderOptions(over);
  const probe = new TaskDownloader({
    self: { id: 'probe', url: 'http://127.0.0.1:1', role: 'agent', labels: {} },
    digest: `sha256:${'0'.repeat(64)}` as Digest,
    scheduler: { announce: () => Promise.reject(new Error('probe')) },
    transport: { bitfield: () => Promise.reject(new Error('probe')), piece: () => Promise.reject(new Error('probe')) },
    store: { openTask: () => Promise.reject(new Error('probe')) },
    ...(over as Partial<TaskDownloaderOptions>),
  });
  const o = (probe as unknown as { o?: Record<string, unknown> }).o;
  if (o && KEYS.every((k) => typeof o[k] === 'number')) {
    knobsSource = 'downloader.ts';
    return Object.fromEntries(KEYS.map((k) => [k, o[k] as number])) as unknown as DownloaderKnobs;
  }
  knobsSource = 'copy';
  const want = Math.max(1, over.wantParents ?? 10);
  return {
    wantParents: want,
    minParents: Math.max(1, Math.min(want, over.minParents ?? 2)),
    maxParents: Math.max(want, over.maxParents ?? want + 2),
    maxInFlight: Math.max(1, over.maxInFlight ?? 6),
    maxInFlightBytes: Math.max(1, over.maxInFlightBytes ?? 48 * MiB),
    perParentLimit: Math.max(1, over.perParentLimit ?? 3),
    seedParentLimit: Math.max(1, over.seedParentLimit ?? 5),
    bitfieldWaitMs: Math.max(0, over.bitfieldWaitMs ?? 5000),
    pieceTimeoutBaseMs: over.pieceTimeoutBaseMs ?? 5000,
    pieceTimeoutMinBps: Math.max(1, over.pieceTimeoutMinBps ?? 128 * 1024),
    stallTimeoutMs: over.stallTimeoutMs ?? 120_000,
    manifestTimeoutMs: over.manifestTimeoutMs ?? 120_000,
    earlyAnnounceGapMs: over.earlyAnnounceGapMs ?? 1000,
    banMs: over.banMs ?? 30_000,
    busyBackoffMs: over.busyBackoffMs ?? 100,
    idleParentMs: Math.max(0, over.idleParentMs ?? 2000),
  };
}
