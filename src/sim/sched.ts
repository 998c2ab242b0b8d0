// The real SchedulerCore under simulated load, and a clean measurement of what it costs.
// During the run every message (announce, heartbeat, publishPieces) and every expire() sweep is
// passed to the core at its virtual time and recorded. Timing the calls in place would charge
// the scheduler for the simulator's garbage collection and cache misses (a 1 GB heap of flows
// and downloads): measured that way, a 10 µs call reads 30-140 µs. So after the run the
// recorded sequence is replayed into a fresh core with the same options and the same seeded
// random source, which reproduces the run call for call (checked: every announce must hand out
// the same number of parents and the same interval). After a warm-up pass, four passes read the
// process's CPU time (getrusage: time other processes take on a shared machine does not count)
// at every virtual-second boundary; per second the cheapest pass counts. The replay runs in a
// child process (sched-replay.ts), so it carries only the scheduler's own heap: the load a
// scheduler process alone on one core would carry. The HTTP layer's JSON parsing, validation and
// reply serialisation are measured on every 32nd message with the server's own codec
// (../p2p/scheduler/codec.ts), run back to back, and reported beside the core's.
import type { AnnounceRequest, AnnounceResponse, HeartbeatRequest, PeerInfo, PieceManifest, SeedFetchRequest } from '../p2p/protocol.js';
import { SchedulerCore, type SchedulerCoreOptions } from '../p2p/scheduler/core.js';
import { Kind, measureReplay, type Call } from './sched-replay.js';
import { seededRandom } from '../p2p/scheduler/random.js';
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
  /** Where the replay ran: a child process (normally), or in place when that failed. */
  measuredIn: 'child-process' | 'in-process';
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
    const measured = measureReplay({ opts: this.opts, seed: this.seed, calls: this.calls });
    const ns = measured.ns.slice(from);
    const codecPerMsg = measured.codecNsPerMsg;
    const exact = measured.exact;
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
      measuredIn: measured.where,
    };
  }
}
