// IPv4/IPv6 CIDR parsing and matching, and the internal/internet split of addresses.
import { isIP } from 'node:net';

export interface Cidr {
  text: string;
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

function toBigInt(ip: string): { family: 4 | 6; value: bigint } | null {
  // IPv4-mapped IPv6 (::ffff:1.2.3.4), as a dual-stack socket reports IPv4 peers.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  const fam = isIP(ip);
  if (fam === 4) {
    const v = ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, value: v };
  }
  if (fam === 6) {
    const zone = ip.indexOf('%');
    if (zone !== -1) ip = ip.slice(0, zone);
    const groupsOf = (part: string): string[] => {
      if (part === '') return [];
      return part.split(':').flatMap((g) => {
        if (!g.includes('.')) return [g];
        const v4 = toBigInt(g)!.value; // embedded IPv4 (::ffff:1.2.3.4 was handled above)
        return [((v4 >> 16n) & 0xffffn).toString(16), (v4 & 0xffffn).toString(16)];
      });
    };
    const gap = ip.indexOf('::');
    const head = groupsOf(gap === -1 ? ip : ip.slice(0, gap));
    const tail = gap === -1 ? [] : groupsOf(ip.slice(gap + 2));
    const groups = gap === -1 ? head : [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
    if (groups.length !== 8) return null;
    return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  }
  return null;
}

export function parseCidr(text: string): Cidr {
  const [addr, len] = text.trim().split('/');
  const ip = toBigInt(addr ?? '');
  if (!ip) throw new Error(`invalid CIDR "${text}": expected an address such as 10.0.0.0/8 or fd00::/8`);
  const max = ip.family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) {
    throw new Error(`invalid prefix length in "${text}" (0-${max})`);
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(max - prefix);
  return { text: text.trim(), family: ip.family, bits: ip.value & mask, prefix };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const a = toBigInt(ip);
  if (!a || a.family !== cidr.family) return false;
  const max = a.family === 4 ? 32 : 128;
  const mask = cidr.prefix === 0 ? 0n : ((1n << BigInt(cidr.prefix)) - 1n) << BigInt(max - cidr.prefix);
  return (a.value & mask) === cidr.bits;
}

const INTERNAL = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '::1/128', 'fc00::/7', 'fe80::/10'].map(parseCidr);

/** Loopback, RFC 1918, CGNAT, link-local and unique-local addresses: "the internal network". */
export function isInternal(ip: string): boolean {
  return INTERNAL.some((c) => cidrContains(c, ip));
}

/** Strips the IPv4-mapped prefix so logs and rules see 127.0.0.1, not ::ffff:127.0.0.1. */
export function normaliseIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}
