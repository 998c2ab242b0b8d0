// The client address a policy acts on: the socket peer, or the X-Forwarded-For entry added by the
// nearest trusted proxy. XFF from anyone else is ignored, or a client could pick its own address.
import type { IncomingMessage } from 'node:http';
import { cidrContains, normaliseIp, parseCidr, type Cidr } from './cidr.js';

export class ClientIpResolver {
  private readonly trusted: Cidr[];

  constructor(trustedProxies: string[]) {
    this.trusted = trustedProxies.map(parseCidr);
  }

  private isTrusted(ip: string): boolean {
    return this.trusted.some((c) => cidrContains(c, ip));
  }

  resolve(req: IncomingMessage): string {
    let ip = normaliseIp(req.socket.remoteAddress ?? '');
    if (this.trusted.length === 0 || !this.isTrusted(ip)) return ip;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
      .split(',')
      .map((s) => normaliseIp(s.trim()))
      .filter(Boolean);
    // Walk from the right: each trusted hop vouches for the one before it.
    while (hops.length > 0) {
      const hop = hops.pop()!;
      ip = hop;
      if (!this.isTrusted(hop)) break;
    }
    return ip;
  }
}
