// The real SchedulerCore under simulated load, and a clean measurement of what it costs.
// During the run every message (announce, heartbeat, publishPieces) and every expire() sweep is
// passed to the core at its virtual time and recorded. Timing the calls in place would charge
// the scheduler for the simulator's garbage collection and cache misses (a 1 GB heap of flows
// and downloads): measured that way, a 10 µs call reads 30-140 µs. So after the run the
// recorded sequence is replayed into a fresh core with the same options and the same seeded
// random source, which reproduces the run call for call (checked: every announce must hand out
// the same number of parents and the same interval). After a warm-up pass, two passes read the
// process's CPU time (getrusage: time other processes take on a shared machine does not count)
// at every virtual-second boundary; per second the cheaper pass counts. That is the load a
// scheduler process alone on one core would carry. The HTTP layer's JSON parsing, validation and
// reply serialisation are measured on every 32nd message with the server's own codec
// (../p2p/scheduler/codec.ts), run back to back, and reported beside the core's.
import type { AnnounceRequest, AnnounceResponse, HeartbeatRequest, PeerInfo, PieceManifest, SeedFetchRequest } from '../p2p/protocol.js';
import { SchedulerCore, type SchedulerCoreOptions } from '../p2p/scheduler/core.js';
import { seededRandom } from '../p2p/scheduler/random.js';
import { announceParser, announceReplyJson, heartbeatParser } from '../p2p/scheduler/codec.js';
import type { VirtualTime } from './engine/time.js';

export interface SchedulerLoad {
  messages: number;
  announces: number;
  heartbeats: number;
  publishes: number;
  expires: number;
  /** Core CPU seconds over the run (all calls, expire included), from the warm replay. */
  cpuS: number;
  /** Estimated JSON + validation CPU seconds the HTTP layer would add (sampled). */
  codecCpuS: number;
  peakMsgsPerS: number;
  /** Highest core CPU in one virtual second, as a share of one core. */
  peakSecondCpuShare: number;
  /** Messages per virtual second, index = second. */
  perSecond: number[];
  /** Core CPU per virtual second, ms. */
  cpuMsPerSecond: number[];
  meanCoreUsPerMsg: number;
  /** The replay reproduced every announce's answer (parents handed out, interval). */
  replayExact: boolean;
}

const CODEC_SAMPLE = 32;
const enum Kind {
  Announce,
  Heartbeat,
  Publish,
  Expire,
}

interface Call {
  k: Kind;
  t: number;
  req?: AnnounceRequest | HeartbeatRequest | PieceManifest;
  from?: string;
  /** Announces: parents handed out * 1e7 + interval, to check the replay. */
  check?: number;
}

export class SimScheduler {
  readonly core: SchedulerCore;
  private readonly calls: Call[] = [];

  constructor(
    private readonly time: VirtualTime,
    private readonly opts: Partial<SchedulerCoreOptions>,
    private readonly seed: number,
  ) {
    this.core = new SchedulerCore({ ...opts, random: seededRandom(seed) });
  }

  setSeedFetchHandler(fn: (seed: PeerInfo, req: SeedFetchRequest) => void): void {
    this.core.setSeedFetchHandler(fn);
  }

  /** The run is over: let go of the simulated world (the seed-fetch effect closes over it). */
  detach(): void {
    this.core.setSeedFetchHandler(() => undefined);
  }

  announce(req: AnnounceRequest): AnnounceResponse {
    const res = this.core.announce(req, this.time.now());
    this.calls.push({ k: Kind.Announce, t: this.time.now(), req, check: res.parents.length * 1e7 + res.announceIntervalMs });
    return res;
  }

  heartbeat(req: HeartbeatRequest): void {
    this.core.heartbeat(req, this.time.now());
    this.calls.push({ k: Kind.Heartbeat, t: this.time.now(), req });
  }

  publishPieces(m: PieceManifest, from: string): void {
    this.calls.push({ k: Kind.Publish, t: this.time.now(), req: m, from });
    this.core.publishPieces(m, from, this.time.now());
  }

  expire(): void {
    this.core.expire(this.time.now());
    this.calls.push({ k: Kind.Expire, t: this.time.now() });
  }

  /**
   * Replays the run into fresh cores and reports the load from virtual time `fromMs` on (the
   * rollout; the seconds before it only register the fleet). Per-second arrays start there.
   */
  load(fromMs = 0): SchedulerLoad {
    const counts = { messages: 0, announces: 0, heartbeats: 0, publishes: 0, expires: 0 };
    const msgs: number[] = [];
    const from = Math.floor(fromMs / 1000);
    for (const c of this.calls) {
      const sec = Math.floor(c.t / 1000) - from;
      if (sec < 0) continue;
      while (msgs.length <= sec) msgs.push(0);
      if (c.k === Kind.Expire) counts.expires++;
      else {
        counts.messages++;
        msgs[sec]!++;
        if (c.k === Kind.Announce) counts.announces++;
        else if (c.k === Kind.Heartbeat) counts.heartbeats++;
        else counts.publishes++;
      }
    }
    // One warm-up pass, then two timed ones; per virtual second the cheaper pass counts (GC
    // pauses land in one pass or the other).
    const warm = this.replay(false);
    const passes = [this.replay(true), this.replay(true)];
    const ns = passes[0]!.ns.map((_, i) => Math.min(...passes.map((p) => p.ns[i]!))).slice(from);
    const codecPerMsg = codecNsPerMessage(warm.codecSamples);
    const exact = passes.every((p) => p.exact);
    const totalNs = ns.reduce((a, b) => a + b, 0);
    // The last (partial) second is left out of the peaks when there are full ones.
    const full = <T>(a: T[]) => (a.length > 1 ? a.slice(0, -1) : a);
    return {
      ...counts,
      cpuS: totalNs / 1e9,
      codecCpuS: (codecPerMsg * counts.messages) / 1e9,
      peakMsgsPerS: Math.max(0, ...full(msgs)),
      peakSecondCpuShare: Math.max(0, ...full(ns)) / 1e9,
      perSecond: msgs,
      cpuMsPerSecond: ns.map((x) => Math.round(x / 1e4) / 100),
      meanCoreUsPerMsg: counts.messages > 0 ? totalNs / 1e3 / counts.messages : 0,
      replayExact: exact,
    };
  }

  /**
   * One replay into a fresh core. Timed passes read the process's CPU time (getrusage, so time
   * other processes took on a shared machine does not count) at every virtual-second boundary.
   * The untimed (warm-up) pass keeps every 32nd announce or heartbeat and its answer as codec
   * samples.
   */
  private replay(timed: boolean): { ns: number[]; codecSamples: CodecSample[]; exact: boolean } {
    const core = new SchedulerCore({ ...this.opts, random: seededRandom(this.seed) });
    const ns: number[] = [];
    const codecSamples: CodecSample[] = [];
    let exact = true;
    let n = 0;
    let cur = -1;
    let mark = process.cpuUsage();
    const close = () => {
      if (cur < 0) return;
      const u = process.cpuUsage(mark);
      while (ns.length <= cur) ns.push(0);
      ns[cur]! += (u.user + u.system) * 1000;
    };
    for (const c of this.calls) {
      const sec = Math.floor(c.t / 1000);
      if (timed && sec !== cur) {
        close();
        cur = sec;
        mark = process.cpuUsage();
      }
      let res: AnnounceResponse | undefined;
      try {
        if (c.k === Kind.Announce) res = core.announce(c.req as AnnounceRequest, c.t);
        else if (c.k === Kind.Heartbeat) core.heartbeat(c.req as HeartbeatRequest, c.t);
        else if (c.k === Kind.Publish) core.publishPieces(c.req as PieceManifest, c.from!, c.t);
        else core.expire(c.t);
      } catch {
        // The run saw the same error (the core is deterministic); the HTTP layer would answer 4xx.
      }
      if (res && res.parents.length * 1e7 + res.announceIntervalMs !== c.check) exact = false;
      if (!timed && c.k !== Kind.Expire && c.k !== Kind.Publish && ++n % CODEC_SAMPLE === 0) codecSamples.push({ k: c.k, wire: JSON.stringify(c.req), res });
    }
    if (timed) close();
    return { ns, codecSamples, exact };
  }
}

interface CodecSample {
  k: Kind;
  /** The request body as it arrives on the wire. */
  wire: string;
  res: AnnounceResponse | undefined;
}

/**
 * CPU per message of the server's codec (../p2p/scheduler/codec.ts): the sampled messages parsed,
 * validated and answered back to back, as a busy scheduler does (one warm-up loop, then the
 * cheapest of three timed loops). Timing each sampled call alone would mostly measure the timer.
 */
function codecNsPerMessage(samples: CodecSample[]): number {
  if (samples.length === 0) return 0;
  let best = Infinity;
  for (let rep = 0; rep < 4; rep++) {
    const c0 = process.cpuUsage();
    for (const s of samples) codec(s);
    const u = process.cpuUsage(c0);
    if (rep > 0) best = Math.min(best, ((u.user + u.system) * 1000) / samples.length);
  }
  return best;
}

/** What the HTTP server does around a call: parse + validate the body, serialise the answer (the server's own codec). */
function codec(s: CodecSample): void {
  const parsed = (s.k === Kind.Announce ? announceParser : heartbeatParser).parse(JSON.parse(s.wire));
  if (!parsed.ok) throw new Error(`a simulated ${s.k === Kind.Announce ? 'announce' : 'heartbeat'} fails the server's parser: ${parsed.message}`);
  if (s.res) void announceReplyJson(s.res).length;
}
