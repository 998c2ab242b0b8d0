// Compact JWS (ES256) with node:crypto: just what the Docker token flow needs.
import { sign, verify } from 'node:crypto';
import type { KeyRing } from './keys.js';

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
  /** Shoal extras: principal kind and admin flag, so each request needs no store lookup for them. */
  kind: 'user' | 'robot' | 'anonymous';
  adm?: boolean;
  /** 'refresh' marks a refresh token, which is never accepted as an access token. */
  use?: 'access' | 'refresh';
  /** Refresh tokens of users: fingerprint of the password hash they were issued under (see TokenService). */
  pwf?: string;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export function signJwt(claims: TokenClaims, keys: KeyRing): string {
  const head = b64({ alg: 'ES256', typ: 'JWT', kid: keys.kid });
  const body = b64(claims);
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), { key: keys.signingKey, dsaEncoding: 'ieee-p1363' });
  return `${head}.${body}.${sig.toString('base64url')}`;
}

export type VerifyFailure = 'malformed' | 'unknown_key' | 'bad_signature' | 'expired' | 'not_yet_valid' | 'wrong_audience';

/** Checks structure, algorithm, key, signature, time window and audience. */
export function verifyJwt(token: string, keys: KeyRing, audience: string, nowSeconds: number): TokenClaims | VerifyFailure {
  const parts = token.split('.');
  if (parts.length !== 3) return 'malformed';
  let header: { alg?: string; kid?: string };
  let claims: TokenClaims;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString());
  } catch {
    return 'malformed';
  }
  // Only ES256: never let the token choose "none" or an HMAC keyed with our public key.
  if (header.alg !== 'ES256' || typeof header.kid !== 'string') return 'malformed';
  const key = keys.publicKey(header.kid);
  if (!key) return 'unknown_key';
  const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2]!, 'base64url'));
  if (!ok) return 'bad_signature';
  if (typeof claims !== 'object' || claims === null || !Array.isArray(claims.access)) return 'malformed';
  if (typeof claims.exp !== 'number' || nowSeconds >= claims.exp) return 'expired';
  if (typeof claims.nbf === 'number' && nowSeconds + 30 < claims.nbf) return 'not_yet_valid';
  if (claims.aud !== audience) return 'wrong_audience';
  return claims;
}
