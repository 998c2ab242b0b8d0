// TaskDownloader's numeric options as the real code resolves them (resolveDownloaderTuning), so
// the thin engine follows the same settings as the downloader engine, a retune of downloader.ts
// reaches the simulation on its next run, and a scenario can override any of them under
// `downloader:`.
import { resolveDownloaderTuning, type DownloaderTuning } from '../../p2p/peer/download-options.js';

export type DownloaderKnobs = DownloaderTuning;

const KEYS = Object.keys(resolveDownloaderTuning({})) as Array<keyof DownloaderKnobs>;

export function checkDownloaderOptions(over: Record<string, number>): void {
  for (const k of Object.keys(over)) if (!(KEYS as string[]).includes(k)) throw new Error(`downloader.${k}: not a TaskDownloader option (known: ${KEYS.join(', ')})`);
}

export function downloaderDefaults(over: Record<string, number>): DownloaderKnobs {
  checkDownloaderOptions(over);
  return resolveDownloaderTuning(over);
}

/**
 * The real piece transport's body timeout (http-transport.ts: longest silence between body
 * bytes, 15 s by default): how long a child keeps waiting on a parent that stopped sending.
 */
export const TRANSPORT_IDLE_TIMEOUT_MS = 15_000;
