// Network access policy: per instance and per namespace, separate modes for internal addresses
// and the internet (open / allowlist / closed). The instance policy applies to every endpoint;
// a namespace's policy additionally applies to its repositories.
import { RegistryError } from '../oci/errors.js';
import { cidrContains, isInternal, parseCidr, type Cidr } from './cidr.js';
import type { NetworkMode, NetworkPolicy } from '../auth/store.js';

interface CompiledPolicy {
  internal: NetworkMode;
  internet: NetworkMode;
  cidrs: Cidr[];
}

export interface NetworkAclOptions {
  /** Loads a policy by scope ('' = instance); cached here and refreshed by invalidate(). */
  load(scope: string): Promise<NetworkPolicy | null>;
  /**
   * With no instance policy stored: refuse every address but loopback (so an administrator on
   * the host can still set a policy) instead of admitting everyone.
   */
  defaultDeny: boolean;
}

const CACHE_MS = 5_000;
const LOOPBACK = [parseCidr('127.0.0.0/8'), parseCidr('::1/128')];

export class NetworkAcl {
  private readonly cache = new Map<string, { policy: CompiledPolicy | null; until: number }>();

  constructor(private readonly opts: NetworkAclOptions) {}

  invalidate(): void {
    this.cache.clear();
  }

  private async policy(scope: string): Promise<CompiledPolicy | null> {
    const hit = this.cache.get(scope);
    if (hit && hit.until > Date.now()) return hit.policy;
    const raw = await this.opts.load(scope);
    let policy: CompiledPolicy | null = raw ? { internal: raw.internal, internet: raw.internet, cidrs: raw.cidrs.map(parseCidr) } : null;
    if (!policy && scope === '' && this.opts.defaultDeny) policy = { internal: 'allowlist', internet: 'closed', cidrs: LOOPBACK };
    this.cache.set(scope, { policy, until: Date.now() + CACHE_MS });
    return policy;
  }

  /** Throws DENIED when `ip` may not reach the instance or, with `namespace`, that namespace. */
  async check(ip: string, namespace?: string): Promise<void> {
    for (const scope of namespace ? ['', namespace] : ['']) {
      const p = await this.policy(scope);
      if (p && !allows(p, ip)) {
        const where = scope === '' ? 'this registry' : `namespace "${scope}"`;
        throw new RegistryError('DENIED', `access to ${where} from ${ip} is not allowed by its network policy`, {
          detail: { clientIp: ip, scope: scope || '*' },
        });
      }
    }
  }
}

export function allows(p: CompiledPolicy, ip: string): boolean {
  const mode = isInternal(ip) ? p.internal : p.internet;
  if (mode === 'open') return true;
  if (mode === 'closed') return false;
  return p.cidrs.some((c) => cidrContains(c, ip));
}
