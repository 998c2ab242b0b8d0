// Slows password guessing: after `maxFailures` failed logins from one address (or against one
// user) within `windowMs`, further attempts get 429 until the window has passed. Robots are not
// locked per account (their 256-bit secrets cannot be guessed, and a lock-out would let anyone
// stop a CI system); their callers' addresses still are.
import { RegistryError } from '../oci/errors.js';
import { ROBOT_PREFIX } from './store.js';

export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws TOOMANYREQUESTS while `clientIp` or `account` is locked out. */
  check(clientIp: string, account: string): void {
    for (const key of this.keys(clientIp, account)) {
      const f = this.failures.get(key);
      if (!f) continue;
      const age = this.now() - f.since;
      if (age >= this.windowMs) this.failures.delete(key);
      else if (f.count >= this.maxFailures) {
        const retry = Math.ceil((this.windowMs - age) / 1000);
        throw new RegistryError('TOOMANYREQUESTS', `too many failed logins; retry after ${retry}s`, { headers: { 'Retry-After': String(retry) } });
      }
    }
  }

  private keys(clientIp: string, account: string): string[] {
    return account.startsWith(ROBOT_PREFIX) ? [`ip\0${clientIp}`] : [`ip\0${clientIp}`, `acct\0${account}`];
  }

  failed(clientIp: string, account: string): void {
    if (this.failures.size > 100_000) this.failures.clear();
    for (const key of this.keys(clientIp, account)) {
      const f = this.failures.get(key);
      if (!f || this.now() - f.since >= this.windowMs) this.failures.set(key, { count: 1, since: this.now() });
      else f.count++;
    }
  }
}
