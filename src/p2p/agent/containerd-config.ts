// Writes containerd's hosts.toml for a registry so that pulls go through the local agent first
// and fall back to the registry when the agent is down (containerd tries hosts in order).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface HostsTomlOptions {
  /** Registry as containerd names it in image references: host[:port]. */
  registry: string;
  /** Scheme of the registry itself. */
  registryScheme: 'http' | 'https';
  /** Agent base URL, e.g. http://127.0.0.1:65001 */
  agentUrl: string;
  /** Extra mirror headers (e.g. a cluster identifier). */
  headers?: Record<string, string>;
}

export function renderHostsToml(o: HostsTomlOptions): string {
  const lines = [
    '# Written by `shoal agent containerd-config`. Pulls try the Shoal agent first (P2P), then the registry.',
    `server = "${o.registryScheme}://${o.registry}"`,
    '',
    `[host."${o.agentUrl}"]`,
    '  capabilities = ["pull", "resolve"]',
    '  dial_timeout = "500ms"',
  ];
  if (o.headers && Object.keys(o.headers).length > 0) {
    lines.push('  [host."' + o.agentUrl + '".header]');
    for (const [k, v] of Object.entries(o.headers)) lines.push(`    ${k} = ["${v.replace(/"/g, '\\"')}"]`);
  }
  return lines.join('\n') + '\n';
}

/** Writes <dir>/<registry>/hosts.toml atomically; returns the path. */
export async function writeHostsToml(dir: string, o: HostsTomlOptions): Promise<string> {
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(o.registry)) throw new Error(`invalid registry host "${o.registry}": expected host[:port]`);
  const target = join(dir, o.registry);
  await mkdir(target, { recursive: true });
  const file = join(target, 'hosts.toml');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, renderHostsToml(o));
  await rename(tmp, file);
  return file;
}
