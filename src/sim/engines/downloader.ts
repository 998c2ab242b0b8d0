// The "downloader" engine: every agent runs the REAL TaskDownloader for every layer, unmodified,
// on virtual time. What it talks to is simulated behind its own interfaces:
//  - SchedulerClient: calls the real SchedulerCore (through SimScheduler, which meters it) half
//    an RTT after the request leaves;
//  - PeerTransport: bitfield long-polls answered from the parent's holding, or a super-seeding
//    seed's view of it (held until the parent has news or waitMs passes), piece requests turned
//    into flows of the network model;
//  - TaskOpener/DownloadTarget: an in-memory bitfield; writes always verify (no bytes, no hashing);
//  - Clock: VirtualTime; rng: seeded per agent and layer.
// It costs ~0.3-0.5 ms of CPU per piece (the downloader's AbortControllers, long polls and promise
// chains), so it is the engine for small fleets and for checking the thin engine against.
import { TaskDownloader, type DownloadTarget, type PeerTransport, type SchedulerClient } from '../../p2p/peer/downloader.js';
import { PeerTransportError, type TransportErrorKind } from '../../p2p/peer/errors.js';
import { pieceBounds } from '../../p2p/peer/manifest.js';
import { VIEW_COALESCE_MS, type SeedView } from '../../p2p/peer/seed-view.js';
import { seededRandom } from '../../p2p/scheduler/random.js';
import type { AnnounceRequest, AnnounceResponse, BitfieldResponse, PeerInfo } from '../../p2p/protocol.js';
import type { Digest } from '../../oci/digest.js';
import type { Holding, Layer, LayerOutcome, PeerEngine, SimHost, World } from '../world.js';
import { checkDownloaderOptions, TRANSPORT_IDLE_TIMEOUT_MS } from './knobs.js';

interface Waiter {
  since: number;
  child: SimHost;
  resolve: (r: BitfieldResponse) => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  done: boolean;
}

export class DownloaderEngine implements PeerEngine {
  readonly name = 'downloader' as const;
  private readonly running = new Map<SimHost, Set<AbortController>>();
  private readonly zero: Buffer;
  private readonly b64 = new WeakMap<Holding, { count: number; s: string }>();
  /** A super-seeding view's base64, per version. */
  private readonly viewB64 = new WeakMap<SeedView, { version: number; s: string }>();

  constructor(readonly world: World) {
    checkDownloaderOptions(world.downloaderOptions);
    this.zero = Buffer.alloc(Math.max(...world.layers.map((l) => l.pieceSize)));
  }

  start(host: SimHost, layer: Layer, done: (r: LayerOutcome) => void): void {
    const w = this.world;
    const ctl = new AbortController();
    let set = this.running.get(host);
    if (!set) this.running.set(host, (set = new Set()));
    set.add(ctl);
    const holding = w.holding(host, layer);
    const target: DownloadTarget = {
      bitfield: holding.bf,
      get isComplete() {
        return holding.complete;
      },
      writePiece: async (index) => w.addPiece(host, layer, index),
      finalize: async () => `sim:${layer.digest}`,
    };
    const dl = new TaskDownloader({
      // Only the scenario's overrides: everything else is the real code's own defaults.
      ...this.world.downloaderOptions,
      self: host.info,
      digest: layer.digest,
      repo: 'sim/app',
      size: layer.size,
      scheduler: this.client(host),
      transport: this.transport(host),
      store: { openTask: async () => target },
      clock: w.time,
      concurrentDownloads: () => set!.size,
      rng: seededRandom((w.seed * 7919 + host.idx * 131 + layer.index) >>> 0),
      signal: ctl.signal,
    });
    // As swarm-jobs.ts wires the agent's PieceTask: a reader stalled on a piece sets the downloader's
    // streaming start, from the moment the task (the manifest) exists.
    const toReader = (i: number) => {
      dl.setSequentialFrom(i);
      w.time.markSettled();
    };
    dl.on('manifest', () => {
      holding.onReaderWait = toReader;
      if (holding.readAt >= 0 && holding.readAt < layer.numPieces) toReader(holding.readAt);
    });
    dl.run().then(
      (r) => {
        holding.onReaderWait = null;
        set!.delete(ctl);
        done(r.outcome === 'done' ? { kind: 'done' } : { kind: 'fallback', reason: 'back-to-source' });
      },
      (err: unknown) => {
        holding.onReaderWait = null;
        set!.delete(ctl);
        if (host.alive) done({ kind: 'fallback', reason: (err as { code?: string }).code ?? 'failed' });
      },
    );
    w.time.markSettled();
  }

  private client(host: SimHost): SchedulerClient {
    const w = this.world;
    return {
      announce: (req: AnnounceRequest) =>
        new Promise<AnnounceResponse>((resolve, reject) => {
          if (!host.alive) return reject(new Error('host is down'));
          w.time.after(w.scenario.network.rttMs / 2, () => {
            w.time.markSettled();
            if (!host.alive) return reject(new Error('host is down'));
            resolve(w.sched!.announce(req));
          });
        }),
    };
  }

  private transport(host: SimHost): PeerTransport {
    const w = this.world;
    const layerOf = (d: Digest) => w.byDigest.get(d)!;
    const fail = (kind: TransportErrorKind, msg: string) => new PeerTransportError(kind, msg, kind === 'not-found' ? { status: 404 } : {});
    return {
      piece: (parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal) =>
        new Promise<Buffer>((resolve, reject) => {
          const layer = layerOf(digest);
          const { length } = pieceBounds(layer, index);
          const p = w.byId.get(parent.id)!;
          const onAbort = () => w.cancel(req);
          const req = w.requestPiece(host, p, layer, index, length, (err) => {
            signal.removeEventListener('abort', onAbort);
            w.time.markSettled();
            if (err) reject(fail(err, `${parent.id}: piece ${index}: ${err}`));
            else resolve(this.zero.subarray(0, length));
          });
          // The transport's body timeout: a parent that went silent fails the request later.
          req.onStall = () =>
            this.later(TRANSPORT_IDLE_TIMEOUT_MS, () => {
              if (req.settled) return;
              w.cancel(req);
              signal.removeEventListener('abort', onAbort);
              reject(fail('timeout', `${parent.id}: piece ${index}: no body bytes for ${TRANSPORT_IDLE_TIMEOUT_MS} ms`));
            });
          // The downloader aborts losers, dropped parents and timeouts: stop their bytes too.
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      bitfield: (parent: PeerInfo, digest: Digest, since?: number, waitMs?: number, signal?: AbortSignal, view?: number) =>
        new Promise<BitfieldResponse>((resolve, reject) => {
          const layer = layerOf(digest);
          const p = w.byId.get(parent.id)!;
          const half = w.topo.rtt(p, host) / 2;
          w.time.after(half, () => {
            if (signal?.aborted) return;
            if (!p.alive) {
              if (w.crash) this.later(half, () => reject(fail('unreachable', `${parent.id}: connection refused`)));
              return;
            }
            const x = p.holdings[layer.index];
            if (!x) return this.later(half, () => reject(fail('not-found', `${parent.id}: no task`)));
            // A super-seeding seed holds the poll while its view is the one the child has (server-routes.ts).
            const waits = x.view ? view === x.view.version : !x.complete && since !== undefined && x.bf.count <= since;
            if (since === undefined || !waitMs || !waits) return this.later(half, () => resolve(this.response(x)));
            const wt: Waiter = { since, child: host, resolve, reject, signal, done: false };
            let list = x.listeners as Waiter[] | null;
            if (!list) x.listeners = list = [];
            list.push(wt);
            w.time.after(waitMs, () => {
              if (wt.done) return;
              wt.done = true;
              this.later(half, () => resolve(this.response(x)));
            });
          });
        }),
    };
  }

  private later(ms: number, fn: () => void): void {
    this.world.time.after(ms, () => {
      this.world.time.markSettled();
      fn();
    });
  }

  private response(x: Holding): BitfieldResponse {
    const v = x.view;
    if (v) {
      let c = this.viewB64.get(v);
      if (!c || c.version !== v.version) this.viewB64.set(v, (c = { version: v.version, s: v.visible.toBase64() }));
      return { bitfield: c.s, count: v.visible.count, total: x.layer.numPieces, view: v.version };
    }
    let c = this.b64.get(x);
    if (!c || c.count !== x.bf.count) this.b64.set(x, (c = { count: x.bf.count, s: x.bf.toBase64() }));
    return { bitfield: c.s, count: x.bf.count, total: x.layer.numPieces };
  }

  onPiece(host: SimHost, holding: Holding, _index: number): void {
    this.answerPolls(host, holding, 0);
  }

  /** As server-routes.ts: a view's change answers its polls VIEW_COALESCE_MS later. */
  onView(host: SimHost, holding: Holding): void {
    this.answerPolls(host, holding, VIEW_COALESCE_MS);
  }

  private answerPolls(host: SimHost, holding: Holding, delayMs: number): void {
    const list = holding.listeners as Waiter[] | null;
    if (!list || list.length === 0) return;
    holding.listeners = [];
    for (const wt of list) {
      if (wt.done || wt.signal?.aborted) continue;
      wt.done = true;
      this.later(delayMs + this.world.topo.rtt(host, wt.child) / 2, () => wt.resolve(this.response(holding)));
    }
  }

  kill(host: SimHost, crash: boolean): void {
    // Aborting makes the downloader stop; its goodbye announce fails (the host is down).
    for (const ctl of this.running.get(host) ?? []) ctl.abort();
    this.running.delete(host);
    this.world.time.markSettled();
    if (!crash) return;
    for (const x of host.holdings) {
      const list = (x?.listeners as Waiter[] | null) ?? [];
      if (x) x.listeners = [];
      for (const wt of list) {
        if (wt.done) continue;
        wt.done = true;
        this.later(this.world.topo.rtt(host, wt.child) / 2, () => wt.reject(new PeerTransportError('unreachable', `${host.id}: connection reset`)));
      }
    }
  }
}
