// One blob download for one peer. Talks to the scheduler only by announce (start, progress every
// announceIntervalMs, early when parents are lost, done/failed): never per piece. Learns which
// parent has what from the parents' bitfields (long-polled), picks pieces with PiecePicker, keeps
// a bounded number of requests in flight, and lets the store verify every piece. Transport,
// disk, time and randomness are injected, so the fleet simulator can run this in virtual time.
// Its seams and results are in ./download-types.ts, its options and their defaults in
// ./download-options.ts (both re-exported here).
import { EventEmitter } from 'node:events';
import type { Digest } from '../../oci/digest.js';
import type { AnnounceRequest, BadPeerReport, BitfieldResponse, PeerInfo, PieceManifest, TaskState } from '../protocol.js';
import { Bitfield } from './bitfield.js';
import { systemClock, type Clock } from './clock.js';
import { PeerError, isPeerError, isTransportError } from './errors.js';
import { pieceBounds, validateManifest } from './manifest.js';
import { isLagging, PiecePicker, type PickerParent, type PieceSet } from './picker.js';
import { parentNearness, recordBusy, earlyAnnounceAt, idleLimitMs, idleParents, nextIdleCheckAt, nextPieceMs, drawReleaseDelay } from './parent-policy.js';
import { DownloadError, type DownloadResult, type DownloadStats, type DownloadTarget, type DownloaderEvents, type PeerLogger } from './download-types.js';
import { pieceTimeoutMs, resolveDownloaderTuning, stallLimitMs, inFlightShare, type DownloaderTuning, type TaskDownloaderOptions } from './download-options.js';
import type { ByteLimiter } from './rate-limiter.js';

export * from './download-types.js';
export * from './download-options.js';

interface ParentState {
  info: PeerInfo;
  view: Bitfield | null;
  /** Same as view, under the name parent-policy reads. */
  readonly pieces: Bitfield | null;
  usedAt: number;
  /** Piece requests to it in flight. */
  active: number;
  /** Aborts this parent's bitfield poll; piece requests have their own controllers. */
  ctl: AbortController;
  pausedUntil: number;
  /** "busy" answers in a row (reset by a piece). */
  busy: number;
  notFound: number;
  bytes: number;
  /** parentNearness: the picker's tie-break among holders. */
  near: number;
  /** It answers with a super-seeding view (seed-view.ts): it holds the whole blob, shows only part. */
  superSeeding?: boolean;
}

// Abort reasons, so a request's failure can be told apart from our own cancellation.
const CANCELLED = 'cancelled';
const DROPPED = 'parent-dropped';
const TIMEOUT = 'piece-timeout';
const FINISHED = 'finished';
/**
 * Ends a sleep that is no longer needed (idle() woken early, a piece's timeout once it is done).
 * One Error made once: abort() without a reason, or a sleep rejecting with a string reason, builds
 * a DOMException with a stack trace each time, ~10 µs, and these run on every turn and request.
 */
const SLEEP_UNNEEDED = new Error('sleep no longer needed');

const MiB = 1024 * 1024;

export class TaskDownloader extends EventEmitter<DownloaderEvents> {
  readonly digest: Digest;
  private readonly o: Required<Omit<TaskDownloaderOptions, 'repo' | 'size' | 'limiter' | 'signal' | 'log' | 'picker' | 'rng' | 'clock' | 'concurrentDownloads'>>;
  private readonly clock: Clock;
  private readonly picker: PiecePicker;
  private readonly rng: () => number;
  private readonly external?: AbortSignal;
  private readonly log?: PeerLogger;

  private manifest: PieceManifest | null = null;
  private target: DownloadTarget | null = null;
  private readonly parents = new Map<string, ParentState>();
  private readonly banned = new Map<string, number>();
  private readonly inFlight = new Map<number, Map<string, AbortController>>();
  private inFlightRequests = 0;
  private inFlightBytes = 0;
  private reports: BadPeerReport[] = [];
  private released: string[] = [];
  /** Recent request-to-landing time of a piece (parent-policy's idleLimitMs scales with it). */
  private pieceMs = 0;
  private readonly fetchStarted = new Map<AbortController, number>();
  private sequentialFrom: number | undefined;

  private announcing: Promise<void> | null = null;
  private announceCtl: AbortController | null = null;
  private announcedOnce = false;
  private announceFailures = 0;
  private intervalMs = 3000;
  private nextAnnounceAt = 0;
  private lastAnnounceAt = -Infinity;
  private releaseDelayMs = 0;
  private lostSinceAnnounce = 0;
  private releasedSinceAnnounce = 0;
  private backToSource = false;
  private fatal: DownloadError | null = null;

  private startedAt = 0;
  private lastProgressAt = 0;
  private woken = false;
  private wakeFn: (() => void) | null = null;
  private running = false;
  private readonly stats: DownloadStats = {
    bytesFromPeers: 0,
    bytesFromSeed: 0,
    wastedBytes: 0,
    corruptPieces: 0,
    parentsUsed: 0,
    parentsDropped: 0,
    piecesFetched: 0,
    piecesResumed: 0,
    announces: 0,
    bytesByParent: {},
    durationMs: 0,
  };

  constructor(private readonly opts: TaskDownloaderOptions) {
    super();
    this.digest = opts.digest;
    this.o = { self: opts.self, digest: opts.digest, scheduler: opts.scheduler, transport: opts.transport, store: opts.store, ...resolveDownloaderTuning(opts) };
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? Math.random;
    this.picker = new PiecePicker({ ...opts.picker, perParentLimit: this.o.perParentLimit, rng: this.rng });
    this.external = opts.signal;
    this.log = opts.log;
  }

  /** The piece manifest, once the scheduler handed it out. */
  get pieceManifest(): PieceManifest | null {
    return this.manifest;
  }

  /** Where pieces land (a PieceTask with the real store), once the manifest is known. */
  get task(): DownloadTarget | null {
    return this.target;
  }

  /** Live counters (the same object the result carries). */
  get progress(): Readonly<DownloadStats> {
    return this.stats;
  }

  /** Streaming bias: a reader is waiting for this piece; prefer it and the next few. undefined clears it. */
  setSequentialFrom(index: number | undefined): void {
    this.sequentialFrom = index;
    this.wake();
  }

  async run(): Promise<DownloadResult> {
    if (this.running) throw new Error('TaskDownloader.run() may be called once');
    this.running = true;
    this.startedAt = this.lastProgressAt = this.clock.now();
    const onAbort = () => this.wake();
    this.external?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (this.external?.aborted) throw new DownloadError('ABORTED', `download of ${this.digest} was aborted`, this.snapshot());
        if (this.fatal) throw this.fatal;
        if (this.backToSource) {
          this.stopAll(FINISHED);
          return { outcome: 'back-to-source', digest: this.digest, ...(this.manifest ? { manifest: this.manifest } : {}), stats: this.snapshot() };
        }
        if (this.target?.bitfield.isComplete()) {
          const path = await this.complete();
          if (path !== null) return { outcome: 'done', digest: this.digest, manifest: this.manifest!, path, stats: this.snapshot() };
          continue;
        }
        this.releaseIdleParents();
        this.maybeAnnounce();
        this.schedule();
        this.checkStall();
        if (this.fatal) continue;
        await this.idle(this.nextDeadline() - this.clock.now());
      }
    } catch (err) {
      const e = err instanceof DownloadError ? err : new DownloadError('DOWNLOAD_FAILED', `download of ${this.digest} failed: ${(err as Error).message}`, this.snapshot(), err);
      this.stopAll(FINISHED);
      this.target?.failWaiters?.(e);
      if (e.code === 'ABORTED') void this.finalAnnounce('left');
      else await this.finalAnnounce('failed');
      throw e;
    } finally {
      this.external?.removeEventListener('abort', onAbort);
      this.stopAll(FINISHED);
    }
  }

  // ---- scheduler -----------------------------------------------------------------------------

  private activeParents(): number {
    return this.parents.size;
  }

  /**
   * When an early announce (asking for replacements) may go out, or null if none is needed: only
   * after losing a parent leaves us below minParents, so a small swarm does not announce early
   * forever, and never sooner than earlyAnnounceGapMs after the last announce.
   */
  private earlyAnnounceAt(): number | null {
    return earlyAnnounceAt({
      announcedOnce: this.announcedOnce,
      lastAnnounceAt: this.lastAnnounceAt,
      intervalMs: this.intervalMs,
      lost: this.lostSinceAnnounce,
      released: this.releasedSinceAnnounce,
      active: this.activeParents(),
      minParents: this.o.minParents,
      wantParents: this.o.wantParents,
      earlyGapMs: this.o.earlyAnnounceGapMs,
      releaseDelayMs: this.releaseDelayMs,
    });
  }

  private maybeAnnounce(): void {
    if (this.announcing) return;
    const now = this.clock.now();
    const early = this.earlyAnnounceAt();
    if (now < this.nextAnnounceAt && !(early !== null && early <= now)) return;
    const first = !this.announcedOnce;
    const wantParents = first ? this.o.wantParents : Math.max(0, this.o.wantParents - this.activeParents());
    const badPeers = this.reports;
    const released = this.released;
    this.reports = [];
    this.released = [];
    const req = this.announceRequest(first ? 'started' : 'downloading', wantParents, badPeers, released);
    const ctl = new AbortController();
    this.announceCtl = ctl;
    this.announcing = this.announce(req, ctl.signal)
      .catch((err: unknown) => {
        if (ctl.signal.aborted) return;
        this.reports.unshift(...badPeers);
        this.released.unshift(...released);
        this.announceFailures++;
        this.nextAnnounceAt = this.clock.now() + Math.min(30_000, 250 * 2 ** Math.min(this.announceFailures, 7));
        this.log?.warn({ digest: this.digest, err: (err as Error).message }, 'announce failed');
        this.emit('announce', { state: req.state, ok: false, parents: this.activeParents(), wantParents });
      })
      .finally(() => {
        this.announcing = null;
        this.announceCtl = null;
        this.wake();
      });
  }

  private announceRequest(state: TaskState, wantParents: number, badPeers: BadPeerReport[], released: string[] = []): AnnounceRequest {
    const task: AnnounceRequest['task'] = { digest: this.digest };
    const size = this.manifest?.size ?? this.opts.size;
    if (size !== undefined) task.size = size;
    if (this.opts.repo !== undefined) task.repo = this.opts.repo;
    const req: AnnounceRequest = { peer: this.o.self, task, state, completedPieces: this.target?.bitfield.count ?? 0, wantParents };
    if (badPeers.length > 0) req.badPeers = badPeers;
    if (released.length > 0) req.releasedParents = released;
    return req;
  }

  private async announce(req: AnnounceRequest, signal: AbortSignal): Promise<void> {
    const res = await this.o.scheduler.announce(req, signal);
    if (signal.aborted) return;
    const now = this.clock.now();
    this.stats.announces++;
    this.announcedOnce = true;
    this.announceFailures = 0;
    this.lastAnnounceAt = now;
    this.lostSinceAnnounce = 0;
    this.releasedSinceAnnounce = 0;
    this.intervalMs = Math.max(100, Number.isFinite(res.announceIntervalMs) ? res.announceIntervalMs : 3000);
    this.nextAnnounceAt = now + this.intervalMs;
    this.releaseDelayMs = drawReleaseDelay(this.rng, this.intervalMs, this.o.releaseSpreadMs, res.swapSpreadMs);
    this.emit('announce', { state: req.state, ok: true, parents: this.activeParents(), wantParents: req.wantParents });
    if (res.backToSource && !this.target?.bitfield.isComplete()) {
      this.backToSource = true;
      return;
    }
    if (res.pieces && !this.manifest) await this.adoptManifest(res.pieces);
    for (const p of res.parents ?? []) this.addParent(p);
  }

  private async adoptManifest(raw: PieceManifest): Promise<void> {
    let m: PieceManifest;
    try {
      m = validateManifest(raw);
      if (m.digest !== this.digest) throw new PeerError('MANIFEST_INVALID', `manifest is for ${m.digest}`);
    } catch (err) {
      this.log?.warn({ digest: this.digest, err: (err as Error).message }, 'ignoring invalid piece manifest from the scheduler');
      return;
    }
    try {
      this.target = await this.o.store.openTask(m);
    } catch (err) {
      this.fatal = new DownloadError(isPeerError(err) ? err.code : 'DOWNLOAD_FAILED', `cannot open task ${this.digest}: ${(err as Error).message}`, this.snapshot(), err);
      return;
    }
    this.manifest = m;
    this.stats.piecesResumed = this.target.bitfield.count;
    this.lastProgressAt = this.clock.now();
    this.emit('manifest', m);
    for (const p of this.parents.values()) this.startPoll(p);
  }

  /** The last word to the scheduler; never throws. Waits for (after cancelling) an announce in flight, so the order holds. */
  private async finalAnnounce(state: 'done' | 'failed' | 'left'): Promise<void> {
    this.announceCtl?.abort();
    await this.announcing;
    const req = this.announceRequest(state, 0, this.reports);
    this.reports = [];
    try {
      await this.o.scheduler.announce(req);
      this.stats.announces++;
      this.emit('announce', { state, ok: true, parents: this.activeParents(), wantParents: 0 });
    } catch (err) {
      this.log?.warn({ digest: this.digest, state, err: (err as Error).message }, 'final announce failed');
      this.emit('announce', { state, ok: false, parents: this.activeParents(), wantParents: 0 });
    }
  }

  // ---- parents -------------------------------------------------------------------------------

  private addParent(info: PeerInfo): void {
    if (!info || typeof info.id !== 'string' || typeof info.url !== 'string' || info.id === this.o.self.id) return;
    const known = this.parents.get(info.id);
    if (known) {
      known.info = info;
      return;
    }
    const until = this.banned.get(info.id);
    if (until !== undefined && until > this.clock.now()) return;
    this.banned.delete(info.id);
    if (this.parents.size >= this.o.maxParents) return;
    const p: ParentState = {
      info,
      view: null,
      get pieces() {
        return this.view;
      },
      usedAt: this.clock.now(),
      active: 0,
      ctl: new AbortController(),
      pausedUntil: 0,
      busy: 0,
      notFound: 0,
      bytes: 0,
      near: parentNearness(this.o.self.labels, info),
    };
    this.parents.set(info.id, p);
    this.emit('parent', { parentId: info.id, change: 'added' });
    if (this.manifest) this.startPoll(p);
  }

  private dropParent(p: ParentState, reason: BadPeerReport['reason'], detail: string): void {
    if (this.parents.get(p.info.id) !== p) return;
    this.parents.delete(p.info.id);
    p.ctl.abort(DROPPED);
    for (const reqs of this.inFlight.values()) reqs.get(p.info.id)?.abort(DROPPED);
    this.reports.push({ peerId: p.info.id, reason, detail });
    this.banned.set(p.info.id, reason === 'corrupt-piece' ? Infinity : this.clock.now() + this.o.banMs);
    this.lostSinceAnnounce++;
    this.stats.parentsDropped++;
    this.log?.info({ digest: this.digest, parent: p.info.id, reason, detail }, 'dropped parent');
    this.emit('parent', { parentId: p.info.id, change: 'dropped', reason, detail });
    this.wake();
  }

  /** Lets go of parents that have had nothing for us for idleParentMs, or only "busy" answers of late (./parent-policy.ts). */
  private releaseIdleParents(): void {
    const m = this.manifest;
    const target = this.target;
    if (!m || !target || (this.o.idleParentMs <= 0 && this.o.busyReleaseStreak <= 0) || target.bitfield.isComplete()) return;
    const idle = idleParents(this.parents.values(), {
      now: this.clock.now(),
      idleMs: this.idleMs(),
      have: target.bitfield,
      numPieces: m.pieceDigests.length,
      inFlight: this.inFlight,
      keep: 1,
      busyRelease: this.o.busyReleaseStreak,
    });
    for (const p of idle) {
      this.parents.delete(p.info.id);
      p.ctl.abort(DROPPED);
      this.released.push(p.info.id);
      this.releasedSinceAnnounce++;
      this.log?.debug({ digest: this.digest, parent: p.info.id, busy: p.busy }, 'released idle parent');
      this.emit('parent', { parentId: p.info.id, change: 'released' });
    }
  }

  private idleMs(): number {
    let oldest = 0;
    const now = this.clock.now();
    if (this.pieceMs === 0) for (const t of this.fetchStarted.values()) oldest = Math.max(oldest, now - t);
    return idleLimitMs(this.o.idleParentMs, this.pieceMs || oldest);
  }

  /** Long-polls a parent's bitfield so we learn its new pieces without asking the scheduler. */
  private startPoll(p: ParentState): void {
    void this.poll(p).catch((err: unknown) => this.log?.warn({ parent: p.info.id, err: (err as Error).message }, 'bitfield poll crashed'));
  }

  private async poll(p: ParentState): Promise<void> {
    const n = this.manifest!.pieceDigests.length;
    const signal = p.ctl.signal;
    const waitMs = this.o.bitfieldWaitMs;
    let since: number | undefined;
    /** A super-seeding seed's view version (seed-view.ts): its view changes without new pieces. */
    let viewVersion: number | undefined;
    let backoff = 250;
    while (!signal.aborted && this.parents.get(p.info.id) === p) {
      const asked = this.clock.now();
      let res: BitfieldResponse;
      try {
        res = await raceAbort(this.o.transport.bitfield(p.info, this.digest, since, since === undefined ? undefined : waitMs, signal, viewVersion), signal);
      } catch (err) {
        if (signal.aborted) return;
        if (isTransportError(err, 'not-found') || isTransportError(err, 'busy')) {
          // It has not started this task yet (or is overloaded): ask again later.
          if (!(await this.pause(backoff, signal))) return;
          backoff = Math.min(backoff * 2, Math.max(250, waitMs));
          continue;
        }
        if (isTransportError(err, 'refused')) this.dropParent(p, 'refused', `bitfield: ${(err as Error).message}`);
        else this.dropParent(p, 'unreachable', `bitfield: ${(err as Error).message}`);
        return;
      }
      if (signal.aborted) return;
      let view: Bitfield;
      try {
        if (res.total !== n) throw new PeerError('BITFIELD_INVALID', `bitfield has ${res.total} pieces, the manifest ${n}`);
        view = Bitfield.fromBase64(res.bitfield, n);
      } catch (err) {
        this.dropParent(p, 'refused', (err as Error).message);
        return;
      }
      const news = since === undefined || view.count > since || res.view !== viewVersion;
      p.view = view;
      since = view.count;
      viewVersion = res.view;
      p.superSeeding = viewVersion !== undefined;
      if (news) {
        backoff = 250;
        this.wake();
      }
      // A complete parent stays complete: no need to keep asking (a seed's view may still change).
      if (view.isComplete() && viewVersion === undefined) return;
      // A parent that answers at once without news does not long-poll: don't spin on it.
      if (!news && this.clock.now() - asked < waitMs / 2) {
        if (!(await this.pause(backoff, signal))) return;
        backoff = Math.min(backoff * 2, Math.max(250, waitMs));
      }
    }
  }

  private async pause(ms: number, signal: AbortSignal): Promise<boolean> {
    try {
      await this.clock.sleep(ms, signal);
      return true;
    } catch {
      return false;
    }
  }

  // ---- pieces --------------------------------------------------------------------------------

  /** When the oldest outstanding request for `piece` started. */
  private firstFetchStart(piece: number): number | undefined {
    let first: number | undefined;
    for (const ctl of this.inFlight.get(piece)?.values() ?? []) {
      const t = this.fetchStarted.get(ctl);
      if (t !== undefined && (first === undefined || t < first)) first = t;
    }
    return first;
  }

  private inFlightLimit(): number {
    return inFlightShare(this.o.maxInFlight, this.opts.concurrentDownloads?.() ?? 1);
  }

  private schedule(): void {
    const m = this.manifest;
    const target = this.target;
    if (!m || !target || this.backToSource || this.fatal || target.bitfield.isComplete()) return;
    const now = this.clock.now();
    const byCount = this.inFlightLimit() - this.inFlightRequests;
    // One piece may always be in flight, however large pieces are relative to the byte budget.
    const byBytes = Math.max(this.inFlightRequests === 0 ? 1 : 0, Math.floor((this.o.maxInFlightBytes - this.inFlightBytes) / m.pieceSize));
    const budget = Math.min(byCount, byBytes);
    if (budget <= 0) return;
    const candidates: PickerParent[] = [];
    for (const p of this.parents.values()) {
      if (!p.view || p.pausedUntil > now) continue;
      candidates.push({ id: p.info.id, pieces: p.view, limit: p.info.role === 'seed' ? this.o.seedParentLimit : this.o.perParentLimit, near: p.near });
    }
    if (candidates.length === 0) return;
    const inFlight = new Map<number, Set<string>>();
    for (const [piece, reqs] of this.inFlight) inFlight.set(piece, new Set(reqs.keys()));
    const input = {
      numPieces: m.pieceDigests.length,
      have: target.bitfield,
      haveCount: target.bitfield.count,
      parents: candidates,
      inFlight,
      maxAssignments: budget,
      lagging: (piece: number) => isLagging(this.firstFetchStart(piece), now, this.pieceMs),
      ...(this.sequentialFrom !== undefined ? { sequentialFrom: this.sequentialFrom } : {}),
    };
    let picks = this.picker.pick(input);
    // A lone child of a super-seeding seed, idle: nobody else will ask the seed for the pieces
    // it hides, so ask for them (in a swarm the view moves on as others ask, or within its hold).
    if (picks.length === 0 && this.inFlightRequests === 0 && this.parents.size === 1) {
      const seeds = candidates.filter((c) => this.parents.get(c.id)?.superSeeding).map((c) => ({ ...c, pieces: wholeBlob(input.numPieces) }));
      if (seeds.length > 0) picks = this.picker.pick({ ...input, parents: seeds });
    }
    for (const a of picks) {
      const p = this.parents.get(a.parentId);
      if (p) this.startFetch(a.piece, p);
    }
  }

  /**
   * Tokens are taken before the request starts, so the cap does not slow the transfer itself; a
   * tight cap still lowers the rate we expect, so the timeout grows with it rather than dropping
   * good parents.
   */
  private pieceTimeoutMs(length: number): number {
    return pieceTimeoutMs(length, this.o, this.opts.limiter?.rate);
  }

  private startFetch(piece: number, p: ParentState): void {
    const { length } = pieceBounds(this.manifest!, piece);
    const ctl = new AbortController();
    let reqs = this.inFlight.get(piece);
    if (!reqs) this.inFlight.set(piece, (reqs = new Map()));
    reqs.set(p.info.id, ctl);
    p.active++;
    p.usedAt = this.clock.now();
    this.fetchStarted.set(ctl, p.usedAt);
    this.inFlightRequests++;
    this.inFlightBytes += length;
    void this.fetch(piece, p, ctl, length)
      .catch((err: unknown) => {
        this.fatal ??= new DownloadError(isPeerError(err) ? err.code : 'DOWNLOAD_FAILED', `storing piece ${piece} of ${this.digest} failed: ${(err as Error).message}`, this.snapshot(), err);
      })
      .finally(() => {
        const r = this.inFlight.get(piece);
        if (r?.get(p.info.id) === ctl) r.delete(p.info.id);
        if (r && r.size === 0) this.inFlight.delete(piece);
        p.active--;
        p.usedAt = this.clock.now();
        this.fetchStarted.delete(ctl);
        this.inFlightRequests--;
        this.inFlightBytes -= length;
        this.wake();
      });
  }

  /** One request. Transport trouble is the parent's fault; a storage error is ours (thrown: fatal). */
  private async fetch(piece: number, p: ParentState, ctl: AbortController, length: number): Promise<void> {
    const id = p.info.id;
    const timer = new AbortController();
    let wrote: boolean;
    try {
      this.clock.sleep(this.pieceTimeoutMs(length), timer.signal).then(
        () => ctl.abort(TIMEOUT),
        () => undefined,
      );
      wrote = await this.fetchAndStore(piece, p, ctl.signal, length);
    } catch (err) {
      return this.fetchFailed(err, piece, p, ctl.signal, length);
    } finally {
      timer.abort(SLEEP_UNNEEDED);
      // Releases a response body nobody read (e.g. the piece landed from another parent meanwhile).
      if (!ctl.signal.aborted) ctl.abort(FINISHED);
    }
    if (!wrote) {
      this.stats.wastedBytes += length;
      return;
    }
    this.lastProgressAt = this.clock.now();
    const started = this.fetchStarted.get(ctl);
    if (started !== undefined) this.pieceMs = nextPieceMs(this.pieceMs, this.lastProgressAt - started);
    this.stats.piecesFetched++;
    p.bytes += length;
    p.notFound = 0;
    p.busy = 0;
    if (this.stats.bytesByParent[id] === undefined) this.stats.parentsUsed++;
    this.stats.bytesByParent[id] = (this.stats.bytesByParent[id] ?? 0) + length;
    if (p.info.role === 'seed') this.stats.bytesFromSeed += length;
    else this.stats.bytesFromPeers += length;
    // Endgame: the other copies of this piece are losers now.
    for (const [other, c] of this.inFlight.get(piece) ?? []) if (other !== id) c.abort(CANCELLED);
    this.emit('piece', { index: piece, parentId: id, bytes: length, completed: this.target!.bitfield.count, total: this.manifest!.pieceDigests.length });
    // Per piece, at debug: where a slow node's time went (bench/p2p BENCH_LOG_LEVEL=debug).
    this.log?.debug({ digest: this.digest, piece, parent: id, ms: started === undefined ? undefined : Math.round(this.lastProgressAt - started), completed: this.target!.bitfield.count }, 'piece');
  }

  /**
   * Streams the piece to disk when both the transport and the target can (no whole piece in
   * memory), else fetches it into a buffer. Transport failures come out wrapped in SourceError.
   */
  private async fetchAndStore(piece: number, p: ParentState, signal: AbortSignal, length: number): Promise<boolean> {
    const t = this.o.transport;
    const target = this.target!;
    if (t.pieceStream && target.writePieceStream) {
      // Raced against the signal so a transport that ignores aborts cannot pin a request slot.
      const body = await raceAbort(t.pieceStream(p.info, this.digest, piece, signal, length, target.bitfield.count), signal).catch((err: unknown) => {
        throw new SourceError(err);
      });
      return target.writePieceStream(piece, paced(tagErrors(body), this.opts.limiter, signal));
    }
    const data = await raceAbort(t.piece(p.info, this.digest, piece, signal, length, target.bitfield.count), signal).catch((err: unknown) => {
      throw new SourceError(err);
    });
    try {
      // A transport without a body stream: the bytes are here already, so the cap can only be
      // paid after them (the request slot is held meanwhile, so the long-run rate still holds).
      await this.opts.limiter?.take(length, signal);
      return await target.writePiece(piece, data);
    } finally {
      // writePiece has finished with the bytes (written or refused): the buffer may be reused.
      t.release?.(data);
    }
  }

  private fetchFailed(err: unknown, piece: number, p: ParentState, signal: AbortSignal, length: number): void {
    this.log?.debug({ digest: this.digest, piece, parent: p.info.id, reason: signal.aborted ? String(signal.reason) : undefined, err: (err as Error)?.message }, 'piece request failed');
    if (isPeerError(err, 'PIECE_DIGEST_MISMATCH') || isPeerError(err, 'PIECE_SIZE_MISMATCH')) {
      this.stats.corruptPieces++;
      // Drop at once; reported at the next announce; the piece goes back to the pool for other parents.
      return this.dropParent(p, 'corrupt-piece', (err as Error).message);
    }
    const reason: unknown = signal.reason;
    if (reason === CANCELLED || reason === DROPPED || reason === FINISHED || this.external?.aborted) return;
    // A timeout means slow (a busy uplink shared by many children), not gone: the scheduler
    // excludes it for us but does not cool it down for everyone.
    if (reason === TIMEOUT) return this.dropParent(p, 'slow', `piece ${piece} timed out after ${Math.round(this.pieceTimeoutMs(length))} ms`);
    if (!(err instanceof SourceError)) {
      if (signal.aborted) return;
      // Not the parent's fault: the disk (ENOSPC, EIO) or a closed task. Fatal for this download.
      throw err;
    }
    const cause = err.cause;
    const msg = `piece ${piece}: ${(cause as Error)?.message ?? String(cause)}`;
    if (isTransportError(cause, 'not-found')) {
      // Its bitfield said otherwise; maybe it evicted the blob. Forget that piece there; three strikes and it goes.
      p.view?.clear(piece);
      if (++p.notFound >= 3) this.dropParent(p, 'refused', `${msg} (three times)`);
      return;
    }
    if (isTransportError(cause, 'busy')) {
      recordBusy(p, p.info.role === 'seed', this.clock.now(), this.o.busyBackoffMs, this.pieceMs);
      return;
    }
    if (isTransportError(cause, 'refused')) return this.dropParent(p, 'refused', msg);
    if (isTransportError(cause, 'timeout')) return this.dropParent(p, 'slow', msg);
    if (isTransportError(cause, 'protocol')) {
      this.stats.corruptPieces++;
      return this.dropParent(p, 'corrupt-piece', msg);
    }
    return this.dropParent(p, 'unreachable', msg);
  }

  // ---- completion, timing --------------------------------------------------------------------

  /** Finalizes; returns the path, or null when pieces were found corrupt on disk and must be fetched again. */
  private async complete(): Promise<string | null> {
    let path: string;
    try {
      path = await this.target!.finalize();
    } catch (err) {
      if (isPeerError(err, 'PIECES_CORRUPT_ON_DISK')) {
        this.log?.warn({ digest: this.digest, detail: err.detail }, 'pieces changed on disk; fetching them again');
        return null;
      }
      throw new DownloadError(isPeerError(err) ? err.code : 'DOWNLOAD_FAILED', `finalizing ${this.digest} failed: ${(err as Error).message}`, this.snapshot(), err);
    }
    this.stopAll(FINISHED);
    await this.finalAnnounce('done');
    return path;
  }

  private checkStall(): void {
    const now = this.clock.now();
    if (!this.manifest) {
      if (now - this.startedAt > this.o.manifestTimeoutMs) {
        this.fatal = new DownloadError('STALLED', `no piece manifest for ${this.digest} after ${this.o.manifestTimeoutMs} ms`, this.snapshot());
      }
      return;
    }
    if (now - this.lastProgressAt > this.stallLimitMs()) {
      this.fatal = new DownloadError('STALLED', `no piece of ${this.digest} arrived for ${Math.round(now - this.lastProgressAt)} ms (${this.parents.size} parents)`, this.snapshot());
    }
  }

  private stallLimitMs(): number {
    return stallLimitMs(this.manifest?.pieceSize ?? 0, this.o, this.opts.limiter?.rate);
  }

  private nextDeadline(): number {
    const now = this.clock.now();
    let t = now + 60_000;
    if (!this.announcing) {
      t = Math.min(t, this.nextAnnounceAt);
      const early = this.earlyAnnounceAt();
      if (early !== null) t = Math.min(t, early);
    }
    for (const p of this.parents.values()) if (p.pausedUntil > now) t = Math.min(t, p.pausedUntil);
    if (this.manifest) t = Math.min(t, Math.max(now + 1, nextIdleCheckAt(this.parents.values(), this.idleMs())));
    t = Math.min(t, this.manifest ? this.lastProgressAt + this.stallLimitMs() + 1 : this.startedAt + this.o.manifestTimeoutMs + 1);
    return t;
  }

  private wake(): void {
    this.woken = true;
    const f = this.wakeFn;
    this.wakeFn = null;
    f?.();
  }

  /** Sleeps until woken (a request finished, a bitfield changed, an announce returned, abort) or `ms` passed. */
  private async idle(ms: number): Promise<void> {
    if (this.woken || ms <= 0) {
      this.woken = false;
      return;
    }
    const ctl = new AbortController();
    await new Promise<void>((resolve) => {
      this.wakeFn = resolve;
      this.clock.sleep(ms, ctl.signal).then(resolve, () => undefined);
    });
    ctl.abort(SLEEP_UNNEEDED);
    this.wakeFn = null;
    this.woken = false;
  }

  private stopAll(reason: string): void {
    for (const p of this.parents.values()) p.ctl.abort(reason);
    for (const reqs of this.inFlight.values()) for (const c of reqs.values()) c.abort(reason);
  }

  private snapshot(): DownloadStats {
    return { ...this.stats, bytesByParent: { ...this.stats.bytesByParent }, durationMs: this.clock.now() - this.startedAt };
  }
}

function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** A failure of the transport (as opposed to our disk), carried through the store's write. */
class SourceError extends Error {
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause), { cause });
    this.name = 'SourceError';
  }
}

/**
 * The download cap, paid as the body arrives: reading stops while the bucket is in debt, so TCP
 * slows the parent down. Not per request up front: that held every request until its whole
 * piece's tokens were there (a 4 MiB piece at 6 Mbit/s: 5.6 s per request, so 8 requests took
 * 45 s to start) and burnt the tokens of requests answered busy; bench/p2p's 20 capped agents
 * ended at 2.4-2.8x the bound that way, and the simulator, which had no cap, could not see why.
 */
async function* paced(body: AsyncIterable<Buffer>, limiter: ByteLimiter | undefined, signal: AbortSignal): AsyncGenerator<Buffer> {
  if (!limiter || limiter.rate === 0) return yield* body;
  for await (const chunk of body) {
    await limiter.take(chunk.length, signal);
    yield chunk;
  }
}

/** Marks errors raised while iterating a response body as the transport's. */
async function* tagErrors(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw new SourceError(err);
  }
}

/** What a super-seeding seed holds: every piece (it shows a view only of complete blobs). */
function wholeBlob(numPieces: number): PieceSet {
  return { has: (i: number) => i >= 0 && i < numPieces };
}
