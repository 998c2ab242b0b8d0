// Preheat endpoints mounted on the scheduler's HTTP server.
import { z } from 'zod';
import { request } from 'undici';
import type { Logger } from 'pino';
import type { SchedulerCore } from '../scheduler/core.js';
import type { SchedulerRoute } from '../scheduler/server.js';
import { PATHS, type PeerInfo, type SeedFetchRequest } from '../protocol.js';
import { PreheatManager } from './preheat.js';

const preheatSchema = z.object({
  image: z.string().min(1).max(512),
  scope: z.enum(['seed', 'all']).default('seed'),
  registry: z.string().url().optional(),
  authorization: z.string().max(8192).optional(),
});

export function preheatRoutes(core: SchedulerCore, log: Logger, registryUrl: string | undefined, clusterToken?: string): SchedulerRoute[] {
  const send = async (peer: PeerInfo, path: string, body: SeedFetchRequest) => {
    const res = await request(`${peer.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(clusterToken ? { authorization: `Bearer ${clusterToken}` } : {}) },
      body: JSON.stringify(body),
      headersTimeout: 10_000,
    });
    res.body.resume();
    if (res.statusCode >= 300) throw new Error(`${peer.id} answered ${res.statusCode} to ${path}`);
  };
  const fleet = {
    seeds: () => core.seeds(),
    agents: () => core.agents(),
    progress: (digest: Parameters<SchedulerCore['progress']>[0]) => core.progress(digest),
  };
  const manager = new PreheatManager(fleet, send, registryUrl, log);
  return [
    {
      name: 'preheat',
      method: 'POST',
      pattern: /^\/scheduler\/v1\/preheat$/,
      async handle(ctx) {
        const body = await ctx.body(preheatSchema);
        try {
          ctx.json(202, manager.start(body));
        } catch (err) {
          ctx.json(400, { error: (err as Error).message });
        }
      },
    },
    {
      name: 'preheat-status',
      method: 'GET',
      pattern: /^\/scheduler\/v1\/preheat\/([0-9a-f-]{36})$/,
      handle(ctx) {
        const job = manager.get(ctx.params[0]!);
        if (!job) ctx.json(404, { error: `no preheat job ${ctx.params[0]}` });
        else ctx.json(200, job);
      },
    },
  ];
}

export { PATHS };
