// The simulated fleet: hosts on the topology, what each holds, piece requests as flows, the
// registry, seeds (preheated or fetching on the scheduler's request), agents pulling an image
// layer by layer, heartbeats and expiry on the real scheduler, and node failures. How an agent
// downloads one layer is the engine's business (./engines): the real TaskDownloader, or the
// thin loop around the real PiecePicker; everything else is shared.
import { createHash } from 'node:crypto';
import type { Digest } from '../oci/digest.js';
import { pieceCount, pieceSizeFor, type PeerInfo, type PieceManifest } from '../p2p/protocol.js';
import { Bitfield } from '../p2p/peer/bitfield.js';
import { uploadSlotsFor } from '../p2p/peer/server-routes.js';
import { TaskSlotShares } from '../p2p/peer/task-shares.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE, progressWeight } from '../p2p/peer/upload-shares.js';
import { DEFAULT_UPLOAD_QUEUE, DEFAULT_UPLOAD_QUEUE_WAIT_MS, uploadsPerChildFor } from '../p2p/peer/upload-slots.js';
import type { TransportErrorKind } from '../p2p/peer/errors.js';
import { seededRandom } from '../p2p/scheduler/random.js';
import type { VirtualTime } from './engine/time.js';
import { FlowNetwork, type Flow } from './net/flows.js';
import { Topology, type TopoHost } from './net/topology.js';
import type { Mode, Scenario, Variant } from './scenario.js';
import { ClientReaders } from './readers.js';
import { SeedView } from '../p2p/peer/seed-view.js';
import { SimScheduler } from './sched.js';

export interface Layer {
  index: number;
  digest: Digest;
  size: number;
  manifest: PieceManifest;
  numPieces: number;
  pieceSize: number;
}

/** One host's copy of one layer. */
export class Holding {
  readonly bf: Bitfield;
  complete = false;
  /** Engine-specific listeners for new pieces (long polls, children). */
  listeners: unknown = null;
  /** The piece the host's client reads next (readers.ts); -1: no client reads this layer now. */
  readAt = -1;
  /** Set by the engine's download: the client stopped at this piece (TaskDownloader.setSequentialFrom). */
  onReaderWait: ((index: number) => void) | null = null;
  /** A super-seeding seed's view of this complete layer (what its children see); null: all it holds. */
  view: SeedView | null = null;
  /** When the view's next hidden piece is shown (a timer is set for it); Infinity: none set. */
  viewRevealAt = Infinity;
  constructor(readonly layer: Layer) {
    this.bf = new Bitfield(layer.numPieces);
  }
}

export interface SimHost extends TopoHost {
  readonly id: string;
  readonly info: PeerInfo;
  alive: boolean;
  holdings: Array<Holding | undefined>;
  /** Pieces being served now, and how many the peer server allows at once (maxConcurrentUploads). */
  uploads: number;
  slots: number;
  startAt: number;
  doneAt: number;
  /** When the host's client read its first byte (readers only; -1 before or without one). */
  firstByteAt: number;
  layersDone: number;
  nextLayer: number;
  slow: boolean;
  fallbacks: number;
  /** Piece bytes this host served to others. */
  uploaded: number;
  /** Uploads whose shares of the uplink are weighted by the child's progress (agents; upload-shares.ts). */
  weighted: PieceRequest[] | null;
  /** Requests waiting for an upload slot (the peer server's queue), oldest first. */
  queued: Array<{ req: PieceRequest; begin: () => void }>;
  /** Seeds: each layer held to an even share of the slots (the peer server's TaskSlotShares); else null. */
  shares: TaskSlotShares | null;
  /** Uploads one child may hold at once (UploadSlots' perChild; 0: no limit), and who holds how many (seeds, and any host with a limit; else null). */
  perChild: number;
  byChild: Map<SimHost, number> | null;
}

/** Called with the request itself, so that one function can serve a download's requests (its `tag` says which). */
export type PieceCallback = (err: TransportErrorKind | null, req: PieceRequest) => void;

/** A transfer to `child`: a piece from a parent, or bytes from the registry. */
export class PieceRequest {
  flow: Flow | null = null;
  settled = false;
  /** Holds one of the parent's upload slots. */
  uploading = false;
  /** Pieces of the layer the child held when it asked (the `?held=N` of a real request). */
  held: number | undefined = undefined;
  /** The layer (digest) whose share of the parent's slots this upload counts against, if the parent shares them. */
  task: string | undefined = undefined;
  /** Told when no more bytes will come (the parent hung): the child's transport times out later. */
  onStall: ((req: PieceRequest) => void) | null = null;
  /** The engine's own reference (its record of the request). */
  tag: unknown = undefined;
  constructor(
    readonly child: SimHost,
    readonly parent: SimHost | null,
    readonly bytes: number,
    readonly cb: PieceCallback,
  ) {}
}

export interface LayerOutcome {
  /** done: the engine has the layer; fallback: the rest comes from the registry. */
  kind: 'done' | 'fallback';
  reason?: string;
}

export interface PeerEngine {
  readonly name: 'downloader' | 'thin';
  start(host: SimHost, layer: Layer, done: (r: LayerOutcome) => void): void;
  /** A new piece landed in `holding` of `host` (wake whoever waits for it). */
  onPiece(host: SimHost, holding: Holding, index: number): void;
  /** What a super-seeding seed shows of `holding` changed (holding.view.changed lists the pieces). */
  onView(host: SimHost, holding: Holding): void;
  /** The host died: drop its downloads silently, fail what waits on it (crash) or leave it hanging. */
  kill(host: SimHost, crash: boolean): void;
}

export interface Bytes {
  origin: number;
  preheatOrigin: number;
  fromSeeds: number;
  fromPeers: number;
}

export class World {
  readonly net: FlowNetwork;
  readonly topo: Topology;
  readonly hosts: SimHost[] = [];
  readonly agents: SimHost[] = [];
  readonly seeds: SimHost[] = [];
  readonly registry: SimHost;
  readonly layers: Layer[];
  readonly byDigest = new Map<Digest, Layer>();
  readonly byId = new Map<string, SimHost>();
  readonly sched: SimScheduler | null;
  readonly rng: () => number;
  readonly bytes: Bytes = { origin: 0, preheatOrigin: 0, fromSeeds: 0, fromPeers: 0 };
  readonly mode: Mode;
  engine!: PeerEngine;
  /** Piece requests answered without data, by kind (busy = the parent's upload slots were full). */
  readonly refusals: Record<string, number> = {};
  /** TaskDownloader options for this variant (scenario's, then the variant's). */
  readonly downloaderOptions: Record<string, number>;
  /** progressWeight's base for agents' uploads (1: even shares). */
  readonly uploadWeightBase: number;
  /** Requests that may wait for a busy upload slot, and for how long (the peer server's line, upload-slots.ts). */
  readonly uploadQueue: number;
  readonly uploadQueueWaitMs: number;
  /** Seeds' task share window (ms; 0 = none, the peer server's default). */
  readonly seedTaskShareMs: number;
  /** Uploads a seed serves one child at once (uploadsPerChildFor('seed') unless the scenario says; 0: no limit). */
  readonly seedUploadsPerChild: number;
  /** Seeds' super-seeding hold (ms; 0 = off, the seed's default --super-seed-hold). */
  readonly superSeedHoldMs: number;
  /** The agents' clients, reading each blob in order (scenario/variant `readers`); null: no readers. */
  readonly readers: ClientReaders | null;
  /** The most pieces a seed served one child at once. */
  seedMostPerChild = 0;
  completed = 0;
  killed = 0;
  crash = true;
  /** The random seed of this run: the variant's, else the scenario's. */
  readonly seed: number;
  private readonly seedFetches = new Map<string, boolean>();

  constructor(
    readonly time: VirtualTime,
    readonly scenario: Scenario,
    readonly variant: Variant,
  ) {
    this.mode = variant.mode;
    this.seed = variant.seed ?? scenario.seed;
    this.rng = seededRandom(this.seed ^ 0x5eed);
    this.downloaderOptions = { ...scenario.downloader, ...variant.downloader };
    this.uploadWeightBase = variant.uploadWeightBase ?? scenario.network.uploadWeightBase ?? DEFAULT_UPLOAD_WEIGHT_BASE;
    this.uploadQueue = variant.uploadQueue ?? scenario.network.uploadQueue ?? DEFAULT_UPLOAD_QUEUE;
    this.uploadQueueWaitMs = this.uploadQueue > 0 ? (scenario.network.uploadQueueWaitMs ?? DEFAULT_UPLOAD_QUEUE_WAIT_MS) : 0;
    this.seedTaskShareMs = variant.seedTaskShareMs ?? scenario.network.seedTaskShareMs ?? 0;
    this.seedUploadsPerChild = variant.seedUploadsPerChild ?? scenario.network.seedUploadsPerChild ?? uploadsPerChildFor('seed');
    this.superSeedHoldMs = variant.superSeedHoldMs ?? scenario.network.superSeedHoldMs ?? 0;
    this.net = new FlowNetwork(time, variant.windowMs ?? scenario.network.windowMs ?? autoWindowMs(scenario, variant));
    const nic = variant.nicBps;
    const up = nic ?? scenario.nicUpBps;
    const down = nic ?? scenario.nicDownBps;
    const slow = variant.slowTail;
    // Which agents are slow is drawn up front from the seed, so every engine sees the same fleet.
    const slowSet = new Set<number>();
    if (slow) for (let i = 0; i < scenario.nodes; i++) if (this.rng() < slow.fraction) slowSet.add(i);
    this.topo = new Topology(this.net, {
      scenario,
      nominalUpBps: up,
      agentNic: (i) => (slowSet.has(i) ? { up: slow!.nicBps, down: slow!.nicBps } : { up, down }),
    });
    this.layers = scenario.layers.map((size, index) => makeLayer(scenario, index, size));
    this.readers = (variant.readers ?? scenario.readers) ? new ClientReaders(this.layers, scenario.layerConcurrency, (h, l) => this.holding(h, l), () => time.now()) : null;
    for (const l of this.layers) this.byDigest.set(l.digest, l);
    for (const t of this.topo.hosts) {
      const h = this.host(t, slowSet.has(t.idx));
      this.hosts.push(h);
      this.byId.set(h.id, h);
      (t.role === 'seed' ? this.seeds : this.agents).push(h);
    }
    this.registry = this.host(this.topo.registry, false);
    this.sched = this.mode === 'direct' ? null : new SimScheduler(time, { ...scenario.scheduler, ...variant.scheduler }, (this.seed ^ 0x5c4ed) >>> 0);
    this.sched?.setSeedFetchHandler((seed, req) => {
      const h = this.byId.get(seed.id);
      const layer = this.byDigest.get(req.digest);
      if (h && layer) this.time.after(this.topo.rtt(h, h), () => this.seedFetch(h, layer));
    });
  }

  private host(t: TopoHost, slow: boolean): SimHost {
    const dc = Math.max(0, t.place.dc);
    const id = t.role === 'registry' ? 'registry' : t.role === 'seed' ? `seed-${t.idx}` : `agent-${t.idx}`;
    const info: PeerInfo = { id, url: `http://10.${dc}.${(t.idx >> 8) & 255}.${t.idx & 255}:4001`, role: t.role === 'seed' ? 'seed' : 'agent', labels: this.topo.labels(t) };
    if (this.scenario.announceUploadBps && t.role !== 'registry') info.uploadBps = t.upBps;
    // As peer-node.ts sizes the peer server (the same function), unless the scenario says otherwise.
    const slots = this.variant.maxConcurrentUploads ?? this.scenario.network.maxConcurrentUploads ?? uploadSlotsFor(info.role, info.uploadBps);
    // As peer-node.ts does: agents share their uplink by the children's progress, seeds evenly.
    const weighted = info.role === 'agent' && this.uploadWeightBase < 1 ? [] : null;
    // As a seed run with --upload-task-share: each layer held to an even share of its slots.
    const shares = info.role === 'seed' && this.seedTaskShareMs > 0 ? new TaskSlotShares(slots, this.seedTaskShareMs) : null;
    const perChild = info.role === 'seed' ? this.seedUploadsPerChild : uploadsPerChildFor(info.role);
    const byChild = perChild > 0 || info.role === 'seed' ? new Map<SimHost, number>() : null;
    // Every field in one literal, not `{ ...t, ... }`: after a spread V8 put the 15 fields added here
    // out of the object (a PropertyArray), one more pointer to follow, and miss, on every request.
    const { idx, role, place, up, down, upBps, downBps } = t;
    return { idx, role, place, up, down, upBps, downBps, id, info, alive: true, holdings: [], uploads: 0, slots, startAt: 0, doneAt: -1, firstByteAt: -1, layersDone: 0, nextLayer: 0, slow, fallbacks: 0, uploaded: 0, weighted, queued: [], shares, perChild, byChild };
  }

  holding(h: SimHost, layer: Layer): Holding {
    let x = h.holdings[layer.index];
    if (!x) h.holdings[layer.index] = x = new Holding(layer);
    return x;
  }

  /** A verified piece lands at `h`; returns false if it was already held. */
  addPiece(h: SimHost, layer: Layer, index: number): boolean {
    const x = this.holding(h, layer);
    if (!x.bf.set(index)) return false;
    if (x.bf.isComplete()) x.complete = true;
    if (x.readAt === index) this.readers!.advance(h, x);
    this.engine?.onPiece(h, x, index);
    return true;
  }

  completeDigests(h: SimHost): Digest[] {
    const out: Digest[] = [];
    for (const x of h.holdings) if (x?.complete) out.push(x.layer.digest);
    return out;
  }

  // --- transfers -----------------------------------------------------------------------------

  /** GET a piece from `parent`: after half an RTT the parent answers not-found / busy or starts the flow. */
  requestPiece(child: SimHost, parent: SimHost, layer: Layer, index: number, bytes: number, cb: PieceCallback): PieceRequest {
    const req = new PieceRequest(child, parent, bytes, cb);
    const half = this.topo.rtt(parent, child) / 2;
    this.time.after(half, () => {
      if (req.settled || !child.alive) return;
      if (!parent.alive) {
        // A crashed host resets the connection; a hung one never answers (the child times out).
        if (this.crash) this.answer(req, 'unreachable', half);
        else req.onStall?.(req);
        return;
      }
      const x = parent.holdings[layer.index];
      if (!x || !x.bf.has(index)) return this.answer(req, 'not-found', half);
      // As UploadSlots does: a free slot within the layer's share, else a short line, else busy.
      const shares = parent.shares;
      const now = shares ? this.time.now() : 0;
      shares?.asked(layer.digest, now);
      // As UploadSlots with perChild: a child at its limit is busy at once, never in line.
      if (parent.perChild > 0 && (parent.byChild!.get(child) ?? 0) >= parent.perChild) return this.answer(req, 'busy', half);
      if (parent.uploads < parent.slots && (!shares || shares.mayTake(layer.digest, now))) return this.beginUpload(req, parent, child, layer, index, bytes);
      if (parent.queued.length >= this.uploadQueue || this.uploadQueueWaitMs === 0) return this.answer(req, 'busy', half);
      const entry = { req, begin: () => this.beginUpload(req, parent, child, layer, index, bytes) };
      parent.queued.push(entry);
      this.time.after(this.uploadQueueWaitMs, () => {
        const i = parent.queued.indexOf(entry);
        if (i < 0) return;
        parent.queued.splice(i, 1);
        this.answer(req, 'busy', half);
      });
    });
    return req;
  }

  private beginUpload(req: PieceRequest, parent: SimHost, child: SimHost, layer: Layer, index: number, bytes: number): void {
      parent.uploads++;
      // As server-routes.ts: an upload counts in a super-seeding view as it starts.
      const x = parent.holdings[layer.index];
      if (x && parent.role === 'seed') this.countSeedUpload(x, index);
      if (x?.view?.servedAt(index, this.time.now())) this.viewChanged(parent, x);
      req.uploading = true;
      if (parent.byChild) {
        const n = (parent.byChild.get(child) ?? 0) + 1;
        parent.byChild.set(child, n);
        if (parent.role === 'seed') this.seedMostPerChild = Math.max(this.seedMostPerChild, n);
      }
      if (parent.shares) {
        parent.shares.took(layer.digest);
        req.task = layer.digest;
      }
      req.held = child.holdings[layer.index]?.bf.count ?? 0;
      req.flow = this.net.start(this.topo.path(parent, child), bytes, this.uploadDone);
      req.flow.tag = req;
      if (parent.weighted) {
        parent.weighted.push(req);
        this.reweigh(parent);
      }
  }

  /**
   * Every upload's end (the flow's tag is its request): one function, not a closure per upload
   * (millions; each outlived several young-generation collections).
   */
  private readonly uploadDone = (f: Flow): void => {
    const req = f.tag as PieceRequest;
    const parent = req.parent!;
    req.flow = null;
    this.finish(req);
    if (parent.role === 'seed') this.bytes.fromSeeds += req.bytes;
    else this.bytes.fromPeers += req.bytes;
    parent.uploaded += req.bytes;
    req.cb(null, req);
  };

  /** seed_first_round_distinct: per seed holding, the distinct pieces among its first numPieces uploads. */
  private readonly firstRounds = new Map<Holding, { uploads: number; pieces: Set<number> }>();

  private countSeedUpload(x: Holding, index: number): void {
    let r = this.firstRounds.get(x);
    if (!r) this.firstRounds.set(x, (r = { uploads: 0, pieces: new Set() }));
    if (r.uploads >= x.layer.numPieces) return;
    r.uploads++;
    r.pieces.add(index);
  }

  seedFirstRounds(): number | null {
    let sum = 0;
    let n = 0;
    for (const [x, r] of this.firstRounds) {
      if (r.uploads < x.layer.numPieces) continue;
      sum += r.pieces.size / x.layer.numPieces;
      n++;
    }
    return n > 0 ? sum / n : null;
  }

  /** Tells the engine, and keeps a timer for the view's next hidden piece due to be shown. */
  private viewChanged(h: SimHost, x: Holding): void {
    this.engine.onView(h, x);
    const at = x.view!.nextRevealAt();
    if (at >= x.viewRevealAt) return;
    x.viewRevealAt = at;
    if (at === Infinity) return;
    this.time.at(at, () => {
      if (x.viewRevealAt !== at) return;
      x.viewRevealAt = Infinity;
      // Nothing was due (a piece served again since): the call still answers waiting polls, as
      // the server's reveal timer does, and arms the next reveal.
      if (x.view!.refresh(this.time.now()) || x.view!.nextRevealAt() < Infinity) this.viewChanged(h, x);
    });
  }

  /** A seed's layer is complete: with super-seeding on, its children see a view of it from now on. */
  private startView(h: SimHost, x: Holding): void {
    if (this.superSeedHoldMs <= 0 || h.role !== 'seed' || x.view) return;
    x.view = new SeedView(x.layer.numPieces, this.superSeedHoldMs);
    x.view.changed.length = 0;
    for (let i = 0; i < x.layer.numPieces; i++) x.view.changed.push(i);
    this.engine?.onView(h, x);
    x.view.changed.length = 0;
  }

  /** The flows' weights in the max-min sharing: the real agent's rule (progressWeight), at every upload's start and end. */
  private reweigh(parent: SimHost): void {
    const serving = parent.weighted!;
    for (const r of serving) if (r.flow) this.net.setWeight(r.flow, progressWeight(r, serving, this.uploadWeightBase));
  }

  /** GET bytes from the registry (direct pulls, seed back-to-source, agent fallback). */
  fetchFromRegistry(child: SimHost, bytes: number, cb: PieceCallback): PieceRequest {
    const req = new PieceRequest(child, null, bytes, cb);
    this.time.after(this.topo.rtt(this.registry, child), () => {
      if (req.settled || !child.alive) return;
      req.flow = this.net.start(this.topo.path(this.registry, child), bytes, () => {
        req.flow = null;
        this.finish(req);
        this.bytes.origin += bytes;
        req.cb(null, req);
      });
      req.flow.tag = req;
    });
    return req;
  }

  /** The child gives up on a request (endgame loser, timeout, parent dropped). */
  cancel(req: PieceRequest): void {
    if (req.settled) return;
    if (req.flow && !req.parent) this.bytes.origin += this.net.transferred(req.flow);
    if (req.flow) this.net.abort(req.flow);
    req.flow = null;
    this.finish(req);
  }

  private finish(req: PieceRequest): void {
    req.settled = true;
    if (req.uploading) {
      req.uploading = false;
      const parent = req.parent!;
      parent.uploads--;
      const byChild = parent.byChild;
      if (byChild) {
        const n = byChild.get(req.child)! - 1;
        if (n > 0) byChild.set(req.child, n);
        else byChild.delete(req.child);
      }
      if (req.task !== undefined) parent.shares!.gaveBack(req.task);
      const serving = parent.weighted;
      const i = serving ? serving.indexOf(req) : -1;
      if (serving && i >= 0) {
        // Swap with the last, not splice (which allocates the removed part): weights ignore order.
        serving[i] = serving[serving.length - 1]!;
        serving.pop();
        this.reweigh(parent);
      }
      // As UploadSlots.release(): the oldest waiter takes the slot, whatever the shares.
      while (parent.uploads < parent.slots && parent.queued.length > 0) {
        const next = parent.queued.shift()!;
        if (!next.req.settled && next.req.child.alive && parent.alive) next.begin();
      }
    }
  }

  private answer(req: PieceRequest, err: TransportErrorKind, delay: number): void {
    this.refusals[err] = (this.refusals[err] ?? 0) + 1;
    this.time.after(delay, () => {
      if (req.settled || !req.child.alive) return;
      this.finish(req);
      req.cb(err, req);
    });
  }

  // --- seeds ---------------------------------------------------------------------------------

  /** Preheat: every seed fetched every layer before the rollout (not timed; counted as origin bytes). */
  preheat(): void {
    for (const s of this.seeds) {
      for (const l of this.layers) {
        const x = this.holding(s, l);
        for (let i = 0; i < l.numPieces; i++) x.bf.set(i);
        x.complete = true;
        this.startView(s, x);
        this.bytes.preheatOrigin += l.size;
      }
      this.sched!.heartbeat({ peer: s.info, completeTasks: this.completeDigests(s) });
      for (const l of this.layers) this.sched!.publishPieces(l.manifest, s.id);
    }
  }

  /** The scheduler asked `seed` to fetch `layer` (its requestSeedFetch effect): registry → seed, then publish. */
  seedFetch(seed: SimHost, layer: Layer): void {
    const key = `${seed.idx}/${layer.index}`;
    if (!seed.alive || this.seedFetches.has(key)) return;
    this.seedFetches.set(key, true);
    const publish = () => {
      this.seedFetches.delete(key);
      if (!seed.alive) return;
      this.sched!.heartbeat({ peer: seed.info, completeTasks: this.completeDigests(seed) });
      this.sched!.publishPieces(layer.manifest, seed.id);
    };
    if (this.holding(seed, layer).complete) return publish();
    this.fetchFromRegistry(seed, layer.size, (err) => {
      if (err) {
        this.seedFetches.delete(key);
        return;
      }
      const x = this.holding(seed, layer);
      for (let i = 0; i < layer.numPieces; i++) this.addPiece(seed, layer, i);
      x.complete = true;
      this.startView(seed, x);
      publish();
    });
  }

  // --- agents --------------------------------------------------------------------------------

  /**
   * Starts an agent's pull at host.startAt: up to layerConcurrency layers at once, in order, as
   * containerd asks for them; or every layer at once when the agent prefetches the image's layers.
   */
  startAgent(h: SimHost): void {
    const prefetch = this.variant.prefetchLayers ?? this.scenario.prefetchLayers;
    const atOnce = prefetch ? this.layers.length : this.scenario.layerConcurrency;
    this.time.at(h.startAt, () => {
      for (let k = 0; k < atOnce; k++) this.nextLayer(h);
      this.readers?.start(h);
    });
  }

  private nextLayer(h: SimHost): void {
    if (!h.alive || h.nextLayer >= this.layers.length) return;
    const layer = this.layers[h.nextLayer++]!;
    const done = () => {
      if (!h.alive) return;
      this.readers?.layerDone(h, layer);
      if (++h.layersDone === this.layers.length) {
        h.doneAt = this.time.now();
        this.completed++;
      } else this.nextLayer(h);
    };
    if (this.mode === 'direct') {
      this.fetchFromRegistry(h, layer.size, (err) => (err ? undefined : done()));
      return;
    }
    this.engine.start(h, layer, (r) => {
      if (r.kind === 'done' || !h.alive) return done();
      // What the agent does when the swarm fails it: the rest of the blob from the registry.
      h.fallbacks++;
      const have = h.holdings[layer.index]?.bf.count ?? 0;
      const missing = Math.max(0, layer.size - have * layer.pieceSize);
      this.fetchFromRegistry(h, missing, (err) => (err ? undefined : done()));
    });
  }

  /** Heartbeats (agents every agentHeartbeatMs, seeds every seedHeartbeatMs, random phase) and expiry. */
  startControlPlane(until: () => boolean): void {
    const sched = this.sched;
    if (!sched) return;
    const beat = (h: SimHost, every: number) => {
      const tick = () => {
        if (!h.alive || until()) return;
        sched.heartbeat({ peer: h.info, completeTasks: this.completeDigests(h) });
        this.time.after(every, tick);
      };
      this.time.after(this.rng() * every, tick);
    };
    // Seeds and agents are long-running daemons: their first beats (random phase) register them
    // before the rollout starts (run.ts starts the pulls one agent heartbeat interval in).
    for (const s of this.seeds) beat(s, this.scenario.seedHeartbeatMs);
    for (const a of this.agents) beat(a, this.scenario.agentHeartbeatMs);
    const expire = () => {
      if (until()) return;
      sched.expire();
      this.time.after(this.scenario.expireIntervalMs, expire);
    };
    this.time.after(this.scenario.expireIntervalMs, expire);
  }

  /** The host dies: no goodbye to the scheduler, its transfers stop, its children find out. */
  kill(h: SimHost): void {
    if (!h.alive) return;
    h.alive = false;
    this.killed++;
    // Requests still on the wire notice at arrival (they check `alive`); transfers are found here.
    for (const f of this.net.flows()) {
      const req = f.tag as PieceRequest | undefined;
      if (!req || req.settled) continue;
      if (req.child === h) this.cancel(req);
      else if (req.parent === h) {
        if (req.flow) this.net.abort(req.flow);
        req.flow = null;
        if (this.crash) {
          this.finish(req);
          req.cb('unreachable', req);
        } else {
          // Hung: the bytes stop and nobody is told; the child's transport notices the silence.
          if (req.uploading) {
            req.uploading = false;
            h.uploads--;
          }
          req.onStall?.(req);
        }
      }
    }
    this.engine?.kill(h, this.crash);
  }
}

/**
 * Rate-recomputation window when the scenario sets none: 10 ms, or a third of the time one piece
 * takes at full NIC speed when that is shorter (10 Gbit/s NICs move 4 MiB in 3.4 ms).
 */
export function autoWindowMs(s: Scenario, v: Variant): number {
  const nic = v.nicBps ?? Math.min(s.nicUpBps, s.nicDownBps);
  const piece = s.pieceSize ?? pieceSizeFor(Math.max(...s.layers));
  return Math.min(10, (piece / nic) * 1000 / 3);
}

function makeLayer(s: Scenario, index: number, size: number): Layer {
  const digest = `sha256:${createHash('sha256').update(`${s.name}/layer/${index}/${size}`).digest('hex')}` as Digest;
  const pieceSize = s.pieceSize ?? pieceSizeFor(size);
  const n = pieceCount(size, pieceSize);
  // Piece digests only need the right shape: the simulator does not hash (writes always verify).
  const pieceDigests = Array.from({ length: n }, (_, i) => `sha256:${(index * 1_000_000 + i).toString(16).padStart(64, '0')}` as Digest);
  return { index, digest, size, numPieces: n, pieceSize, manifest: Object.freeze({ digest, size, pieceSize, pieceDigests }) };
}
