// Parsers for durations, sizes and listen addresses in flags and config files. Kept apart from
// config.ts (and its zod schemas) so the node agent can parse its flags without loading zod.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) throw new Error(`invalid duration "${value}": use a number with ms, s, m, h or d (e.g. 30s, 1h)`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) throw new Error(`invalid size "${value}": use bytes or a unit such as 512KiB, 8MiB, 10GiB`);
  return Math.round(Number(m[1]) * unit);
}

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-f:]+)\]|([^:]+)):(\d{1,5})$/i.exec(value.trim());
  if (!m) throw new Error(`invalid listen address "${value}": use HOST:PORT, e.g. 127.0.0.1:5000`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port ${port} in "${value}"`);
  return { host: (m[1] ?? m[2])!, port };
}
