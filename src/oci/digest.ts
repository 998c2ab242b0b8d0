// Digests per the OCI image spec: algorithm ":" encoded, with sha256 and sha512 supported.
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';
export type Digest = `${DigestAlgorithm}:${string}`;

const encodedLength: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const digestPattern = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses and validates a digest string; throws DIGEST_INVALID (or UNSUPPORTED for unknown algorithms). */
export function parseDigest(value: string): ParsedDigest {
  const m = digestPattern.exec(value);
  if (!m) throw new RegistryError('DIGEST_INVALID', `invalid digest "${truncate(value)}"`);
  const algorithm = m[1]!;
  const hex = m[2]!;
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm "${truncate(algorithm)}" (use sha256 or sha512)`);
  }
  if (hex.length !== encodedLength[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest "${truncate(value)}": expected ${encodedLength[algorithm]} lowercase hex characters`);
  }
  return { algorithm, hex };
}

export function isDigest(value: string): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function asDigest(value: string): Digest {
  parseDigest(value);
  return value as Digest;
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
