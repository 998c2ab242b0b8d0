// Validated configuration for `shoal serve` and `shoal gc`. Flags win over SHOAL_* environment variables.
import { z } from 'zod';
import { resolve } from 'node:path';
import { parseRatePair } from '../policy/rate-limit.js';

export { parseDuration, parseSize, parseListen } from './units.js';
import { parseDuration, parseSize, parseListen } from './units.js';

/** A string option parsed by `parse`; its error message becomes the validation issue. */
const parsedWith = <T>(parse: (value: string) => T) =>
  z.string().transform((v, ctx) => {
    try {
      return parse(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  });
const duration = parsedWith(parseDuration);
const size = parsedWith(parseSize);
const ratePair = parsedWith(parseRatePair);

export const serveSchema = z.object({
  listen: parsedWith(parseListen),
  data: z.string().min(1).transform((v) => resolve(v)),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  accessLog: z.enum(['all', 'default', 'off']).default('default'),
  maxManifestSize: size,
  maxBlobSize: size,
  manifestCacheSize: size,
  manifestCacheTtl: duration,
  gcInterval: duration.or(z.literal('off').transform(() => 0)),
  gcGrace: duration,
  gcDeleteUntagged: z.boolean(),
  uploadTtl: duration,
  // Tenancy (docs/tenancy.md). Off by default: the registry is open, as before.
  auth: z.boolean().default(false),
  authService: z.string().min(1).default('shoal'),
  authRealm: z.string().url().optional(),
  tokenTtl: duration.default(5 * 60_000),
  refreshTtl: duration.default(24 * 3_600_000),
  keyRotation: duration.default(24 * 3_600_000),
  trustedProxy: z.array(z.string()).default([]),
  networkDefaultDeny: z.boolean().default(false),
  rateLimitIp: ratePair.default({ primary: 0, secondary: 0 }),
  rateLimitToken: ratePair.default({ primary: 0, secondary: 0 }),
  maxConcurrent: z.coerce.number().int().nonnegative().default(0),
  /** Delivery chains (scan → gate → replicate → preheat → notify) and the pull gate. */
  chains: z.boolean().default(true),
});

export type ServeConfig = z.output<typeof serveSchema>;

/** Defaults, each overridable by an environment variable (SHOAL_LISTEN, SHOAL_DATA, ...). */
export const serveDefaults = {
  listen: env('SHOAL_LISTEN', '127.0.0.1:5000'),
  data: env('SHOAL_DATA', './data'),
  logLevel: env('SHOAL_LOG_LEVEL', 'info'),
  accessLog: env('SHOAL_ACCESS_LOG', 'default'),
  maxManifestSize: env('SHOAL_MAX_MANIFEST_SIZE', '8MiB'),
  maxBlobSize: env('SHOAL_MAX_BLOB_SIZE', '64GiB'),
  manifestCacheSize: env('SHOAL_MANIFEST_CACHE_SIZE', '64MiB'),
  manifestCacheTtl: env('SHOAL_MANIFEST_CACHE_TTL', '10s'),
  gcInterval: env('SHOAL_GC_INTERVAL', 'off'),
  gcGrace: env('SHOAL_GC_GRACE', '1h'),
  uploadTtl: env('SHOAL_UPLOAD_TTL', '24h'),
  authService: env('SHOAL_AUTH_SERVICE', 'shoal'),
  tokenTtl: env('SHOAL_TOKEN_TTL', '5m'),
  refreshTtl: env('SHOAL_REFRESH_TTL', '24h'),
  keyRotation: env('SHOAL_KEY_ROTATION', '24h'),
  rateLimitIp: env('SHOAL_RATE_LIMIT_IP', '0,0'),
  rateLimitToken: env('SHOAL_RATE_LIMIT_TOKEN', '0,0'),
  maxConcurrent: env('SHOAL_MAX_CONCURRENT', '0'),
};

function env(name: string, fallback: string): string {
  return process.env[name] ?? fallback;
}

/** Validates raw option values; throws an Error listing every bad option. */
export function loadServeConfig(raw: Record<string, unknown>): ServeConfig {
  const parsed = serveSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  --${kebab(String(i.path[0] ?? ''))}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
