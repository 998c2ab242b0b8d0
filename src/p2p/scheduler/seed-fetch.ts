// The scheduler's one outbound effect: POST {seed}/seed/v1/fetch. Fire-and-forget: the announce
// that caused it has long been answered; a failure goes back into the core, which asks another
// seed. The seed is expected to answer promptly (202) and publish the piece manifest when done.
import { request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { PATHS, type PeerInfo, type SeedFetchRequest } from '../protocol.js';

export interface SeedFetcherOptions {
  log: Logger;
  clusterToken?: string;
  /** Put into requests that name no registry (the seed's own --registry otherwise). */
  registryUrl?: string;
  /** Until the seed's response headers arrive (default 10 s). */
  timeoutMs?: number;
  dispatcher?: Dispatcher;
  /** The seed refused, failed or could not be reached. */
  onFailure(seed: PeerInfo, req: SeedFetchRequest, reason: string): void;
}

export function createSeedFetcher(opts: SeedFetcherOptions): (seed: PeerInfo, req: SeedFetchRequest) => void {
  const timeout = opts.timeoutMs ?? 10_000;
  return (seed, req) => {
    const body: SeedFetchRequest = { ...req, ...(req.registry === undefined && opts.registryUrl ? { registry: opts.registryUrl } : {}) };
    const url = `${seed.url.replace(/\/+$/, '')}${PATHS.seedFetch}`;
    const started = performance.now();
    void (async () => {
      try {
        const res = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(opts.clusterToken ? { authorization: `Bearer ${opts.clusterToken}` } : {}) },
          body: JSON.stringify(body),
          headersTimeout: timeout,
          bodyTimeout: timeout,
          ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
        });
        const text = (await res.body.text()).slice(0, 500);
        if (res.statusCode >= 200 && res.statusCode < 300) {
          opts.log.info({ seed: seed.id, digest: req.digest, repo: req.repo, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'seed fetch requested');
          return;
        }
        fail(`seed answered ${res.statusCode}: ${text}`);
      } catch (err) {
        fail((err as Error).message);
      }
    })();
    function fail(reason: string) {
      opts.log.warn({ seed: seed.id, url, digest: req.digest, reason }, 'seed fetch request failed; trying another seed');
      try {
        opts.onFailure(seed, req, reason);
      } catch (err) {
        opts.log.error({ err }, 'seed fetch failure handler threw');
      }
    }
  };
}
