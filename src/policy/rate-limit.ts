// Rate limits and load shedding. Requests are "primary" (manifest and blob GET/HEAD, and token
// requests: what a pulling fleet needs) or "secondary" (catalog, tag lists, pushes, admin, audit).
// Token buckets per client IP and per principal, one pair per class; and a global concurrency
// budget of which secondary work may use only a share, so under overload it is shed first while
// pulls keep being served.
import { RegistryError } from '../oci/errors.js';

export type RequestClass = 'primary' | 'secondary';

export interface RateLimitOptions {
  /** Requests per second per client IP; 0 = unlimited. Burst = 2 s worth (at least 1). */
  perIp: Record<RequestClass, number>;
  /** Requests per second per authenticated principal; 0 = unlimited. */
  perPrincipal: Record<RequestClass, number>;
  /** Requests in flight at once, all classes; 0 = unlimited. */
  maxConcurrent: number;
  /** Fraction of maxConcurrent that secondary work may occupy. */
  secondaryShare: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_BUCKETS = 50_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private inFlight = 0;
  private readonly now: () => number;
  /** 429s answered, by class (for metrics and tests). */
  readonly rejected: Record<RequestClass, number> = { primary: 0, secondary: 0 };

  constructor(private readonly opts: RateLimitOptions) {
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    const o = this.opts;
    return o.maxConcurrent > 0 || o.perIp.primary > 0 || o.perIp.secondary > 0 || o.perPrincipal.primary > 0 || o.perPrincipal.secondary > 0;
  }

  /** True while secondary work is being shed for concurrency: audit of pulls is dropped then. */
  get overloaded(): boolean {
    return this.opts.maxConcurrent > 0 && this.inFlight >= this.opts.maxConcurrent * this.opts.secondaryShare;
  }

  /**
   * Admits one request or throws TOOMANYREQUESTS with Retry-After. On admission returns the
   * release function to call when the response is finished. The same as admitClient followed by
   * admitPrincipal, for callers that know both at once.
   */
  admit(cls: RequestClass, clientIp: string, principal: string | undefined): () => void {
    const release = this.admitClient(cls, clientIp);
    try {
      this.admitPrincipal(cls, principal);
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * The steps that need no identity: the concurrency budget and the per-address bucket. The /v2
   * chain runs them before authentication, so a flood of forged tokens is stopped here and never
   * costs a signature check each.
   */
  admitClient(cls: RequestClass, clientIp: string): () => void {
    const { maxConcurrent, secondaryShare } = this.opts;
    if (maxConcurrent > 0) {
      const cap = cls === 'primary' ? maxConcurrent : Math.max(1, Math.floor(maxConcurrent * secondaryShare));
      if (this.inFlight >= cap) this.refuse(cls, 1, `the registry is at its concurrency limit for ${cls === 'primary' ? 'pulls' : 'this kind of request'}`);
    }
    this.take(`ip\0${clientIp}\0${cls}`, this.opts.perIp[cls], cls, `client ${clientIp}`);
    if (maxConcurrent === 0) return noop;
    this.inFlight++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.inFlight--;
      }
    };
  }

  /**
   * The per-token limit, after authentication. "Per token" means per account (user or robot): all
   * tokens of one account, from any address, share one bucket per class, so minting fresh tokens
   * (or spreading them over many nodes) buys no extra budget.
   */
  admitPrincipal(cls: RequestClass, principal: string | undefined): void {
    if (principal && principal !== 'anonymous') this.take(`p\0${principal}\0${cls}`, this.opts.perPrincipal[cls], cls, `account ${principal}`);
  }

  private take(key: string, rate: number, cls: RequestClass, who: string): void {
    if (rate <= 0) return;
    // Two seconds of requests, and at least one: a rate under 0.5/s must still admit a request.
    const burst = Math.max(1, rate * 2);
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
      b = { tokens: burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) this.refuse(cls, Math.max(1, Math.ceil((1 - b.tokens) / rate)), `rate limit of ${rate}/s for ${who} exceeded`);
    b.tokens -= 1;
  }

  private refuse(cls: RequestClass, retryAfterSeconds: number, why: string): never {
    this.rejected[cls]++;
    throw new RegistryError('TOOMANYREQUESTS', `${why}; retry after ${retryAfterSeconds}s`, { headers: { 'Retry-After': String(retryAfterSeconds) } });
  }
}

const noop = () => {};

/** Manifest and blob GET/HEAD are the pull path; everything else is secondary. */
export function classify(route: string, method: string | undefined): RequestClass {
  return (route === 'manifest' || route === 'blob') && (method === 'GET' || method === 'HEAD') ? 'primary' : 'secondary';
}

/** Parses "PULLS,OTHER" (requests per second), e.g. "0,20": pulls unlimited, other work 20/s. */
export function parseRatePair(value: string): Record<RequestClass, number> {
  const m = /^(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)$/.exec(value.trim());
  if (!m) throw new Error(`invalid rate "${value}": use PULLS,OTHER requests per second, e.g. 1000,20 (0 = unlimited)`);
  return { primary: Number(m[1]), secondary: Number(m[2]) };
}
