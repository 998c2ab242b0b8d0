// The clean measurement of the scheduler's cost (see sched.ts): the recorded calls replayed into
// fresh SchedulerCores, in a process of their own. A real scheduler process holds only its own
// state; replayed inside the simulator, the same calls cost up to 1.7x more at 10,000 agents (the
// simulator's old generation is gigabytes even after the world is dropped, and every major GC
// walks it), so `measureReplay` runs this file as a child process and falls back to replaying
// in place only if that fails. One warm-up pass, then four timed ones; per virtual second the
// cheapest pass counts (GC pauses land in one pass or another, and this VM's timing noise only
// ever adds: with two passes the busiest second of the same calls read 0.81 and 0.93 core-seconds
// in two runs).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnnounceRequest, AnnounceResponse, HeartbeatRequest, PieceManifest } from '../p2p/protocol.js';
import { announceParser, announceReplyJson, heartbeatParser } from '../p2p/scheduler/codec.js';
import { SchedulerCore, type SchedulerCoreOptions } from '../p2p/scheduler/core.js';
import { seededRandom } from '../p2p/scheduler/random.js';

export const Kind = { Announce: 0, Heartbeat: 1, Publish: 2, Expire: 3 } as const;
type KindOf = (typeof Kind)[keyof typeof Kind];

export interface Call {
  k: KindOf;
  t: number;
  req?: AnnounceRequest | HeartbeatRequest | PieceManifest;
  from?: string;
  /** Announces: parents handed out * 1e7 + interval, to check the replay. */
  check?: number;
}

export interface ReplayInput {
  opts: Partial<SchedulerCoreOptions>;
  seed: number;
  calls: Call[];
}

export interface ReplayResult {
  /** Core CPU per virtual second (index = second), ns: the cheapest of four timed passes. */
  ns: number[];
  /** The server codec's CPU per message, ns. */
  codecNsPerMsg: number;
  /** Every announce of every pass handed out what the run handed out. */
  exact: boolean;
  /** Where it was measured. */
  where: 'child-process' | 'in-process';
}

const CODEC_SAMPLE = 32;

/** Measures the calls in a child process (falls back to this one if the child fails). */
export function measureReplay(input: ReplayInput): ReplayResult {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-sched-replay-'));
  try {
    const file = join(dir, 'calls.json');
    writeFileSync(file, JSON.stringify(input));
    // For profiling the scheduler alone: `node sched-replay.js FILE` replays a kept copy.
    if (process.env.SHOAL_SIM_KEEP_SCHED_CALLS) copyFileSync(file, process.env.SHOAL_SIM_KEEP_SCHED_CALLS);
    // process.execArgv carries a loader such as tsx when the simulator runs from sources (tests).
    const child = spawnSync(process.execPath, [...replayExecArgv(process.execArgv), fileURLToPath(import.meta.url), file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (child.status === 0) return { ...(JSON.parse(child.stdout) as Omit<ReplayResult, 'where'>), where: 'child-process' };
  } catch {
    // fall through to the in-process measurement
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { ...replayAll(input), where: 'in-process' };
}

/** Profiler options whose value may come as the next argument (`--cpu-prof-dir DIR`). */
const PROFILER_VALUE_FLAGS = new Set(['--cpu-prof-dir', '--cpu-prof-name', '--cpu-prof-interval', '--heap-prof-dir', '--heap-prof-name', '--heap-prof-interval']);

/**
 * The simulator's node options for the replay's child, without its profiler options: a child
 * that profiled itself would measure the profiler too, and a value left behind without its flag
 * (`2000` of `--cpu-prof-interval 2000`) made the child fail, so the scheduler was silently
 * measured in the simulator's own process instead.
 */
export function replayExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (!a.startsWith('--cpu-prof') && !a.startsWith('--heap-prof')) out.push(a);
    else if (PROFILER_VALUE_FLAGS.has(a)) i++;
  }
  return out;
}

function replayAll(input: ReplayInput): Omit<ReplayResult, 'where'> {
  const warm = replay(input, false);
  const passes = [0, 1, 2, 3].map(() => replay(input, true));
  return {
    ns: passes[0]!.ns.map((_, i) => Math.min(...passes.map((p) => p.ns[i] ?? 0))),
    codecNsPerMsg: codecNsPerMessage(warm.codecSamples),
    exact: passes.every((p) => p.exact),
  };
}

/**
 * One replay into a fresh core. Timed passes read the process's CPU time (getrusage, so time
 * other processes took on a shared machine does not count) at every virtual-second boundary.
 * The untimed (warm-up) pass keeps every 32nd announce or heartbeat and its answer as codec
 * samples.
 */
function replay(input: ReplayInput, timed: boolean): { ns: number[]; codecSamples: CodecSample[]; exact: boolean } {
  const core = new SchedulerCore({ ...input.opts, random: seededRandom(input.seed) });
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
  for (const c of input.calls) {
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

interface CodecSample {
  k: KindOf;
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

// Run as a child process: `node sched-replay.js FILE` prints the ReplayResult fields as JSON.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2]) {
  process.stdout.write(JSON.stringify(replayAll(JSON.parse(readFileSync(process.argv[2], 'utf8')) as ReplayInput)));
}
