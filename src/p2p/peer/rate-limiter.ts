// Token-bucket bandwidth caps in bytes/s (upload, download and back-to-source, one bucket each
// per agent). A taker may drive the bucket into debt and then waits the debt off, so concurrent
// takers are served in arrival order and the long-run rate is exact even when one take is much
// larger than the burst. Rate 0 or undefined means unlimited: take() then costs nothing.
import { Transform, type TransformCallback } from 'node:stream';
import { systemClock, type Clock } from './clock.js';

export const DEFAULT_BURST = 256 * 1024;

export interface RateLimiterOptions {
  /** Bytes per second; 0 or undefined = unlimited. */
  rate?: number;
  /** Bucket size in bytes (how much may pass at once after idling); default 256 KiB. */
  burst?: number;
  clock?: Clock;
}

/** What the downloader needs; RateLimiter implements it, the simulator may substitute its own. */
export interface ByteLimiter {
  take(bytes: number, signal?: AbortSignal): Promise<void>;
  readonly rate: number;
}

export class RateLimiter implements ByteLimiter {
  private bps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(opts: RateLimiterOptions = {}) {
    this.bps = normaliseRate(opts.rate);
    this.burst = Math.max(1, opts.burst ?? DEFAULT_BURST);
    this.clock = opts.clock ?? systemClock;
    this.tokens = this.burst;
    this.last = this.clock.now();
  }

  /** Bytes per second, 0 when unlimited. */
  get rate(): number {
    return this.bps;
  }

  get unlimited(): boolean {
    return this.bps === 0;
  }

  /** Changes the cap at run time (config reload); debt already taken stays owed at the new rate. */
  setRate(rate: number | undefined): void {
    this.refill();
    this.bps = normaliseRate(rate);
    if (this.bps === 0) this.tokens = this.burst;
  }

  /** Waits until `bytes` may pass. On abort the bytes are given back and the promise rejects. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bps === 0 || bytes <= 0) return;
    this.refill();
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.bps) * 1000;
    try {
      await this.clock.sleep(waitMs, signal);
    } catch (err) {
      this.tokens = Math.min(this.burst, this.tokens + bytes);
      throw err;
    }
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    if (this.bps > 0) this.tokens = Math.min(this.burst, this.tokens + elapsed * this.bps);
  }
}

function normaliseRate(rate: number | undefined): number {
  return rate !== undefined && Number.isFinite(rate) && rate > 0 ? rate : 0;
}

/**
 * A pass-through Transform that paces the bytes flowing through it; put it in a pipeline between
 * a source and a response (`pipeline(file, pace(limiter), res)`) or a download body and its sink.
 * Big chunks are cut to the burst size so pacing stays smooth instead of stop-and-go.
 */
export function pace(limiter: ByteLimiter | undefined, opts: { signal?: AbortSignal; onBytes?: (n: number) => void; sliceBytes?: number } = {}): Transform {
  const slice = Math.max(1, opts.sliceBytes ?? DEFAULT_BURST);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      if (!limiter || limiter.rate === 0) {
        opts.onBytes?.(chunk.length);
        done(null, chunk);
        return;
      }
      void (async () => {
        for (let off = 0; off < chunk.length; off += slice) {
          const part = chunk.subarray(off, Math.min(chunk.length, off + slice));
          await limiter.take(part.length, opts.signal);
          opts.onBytes?.(part.length);
          this.push(part);
        }
      })().then(() => done(), done);
    },
  });
}

/** The same pacing for async iteration (e.g. `for await (const c of paced(body, limiter))`). */
export async function* paced(source: AsyncIterable<Buffer | Uint8Array>, limiter: ByteLimiter | undefined, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!limiter || limiter.rate === 0) {
      yield buf;
      continue;
    }
    for (let off = 0; off < buf.length; off += DEFAULT_BURST) {
      const part = buf.subarray(off, Math.min(buf.length, off + DEFAULT_BURST));
      await limiter.take(part.length, signal);
      yield part;
    }
  }
}
