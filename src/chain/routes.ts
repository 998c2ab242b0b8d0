// Admin REST API of the delivery chain, mounted on the registry listener under /api/v1/chains.
//   GET    /api/v1/chains                         list chains
//   PUT    /api/v1/chains/{name}                  create or replace (body: chain definition)
//   GET    /api/v1/chains/{name}                  one chain
//   DELETE /api/v1/chains/{name}                  remove
//   POST   /api/v1/chains/{name}/runs             run by hand: {"image":"repo:tag"|"repo@digest"}
//   POST   /api/v1/chains/{name}/sync             full sync of its replication targets now (report)
//   GET    /api/v1/chains/_runs?chain&repo&status&limit   runs, newest first
//   GET    /api/v1/chains/_runs/{id}?logsAfter=N  one run with its log lines after seq N
//   GET    /api/v1/chains/_runs/{id}/events       the same as server-sent events until the run ends
//   GET    /api/v1/chains/_gate/policies, PUT|DELETE /api/v1/chains/_gate/policies/{namespace}
//   GET    /api/v1/chains/_gate/blocked, DELETE /api/v1/chains/_gate/blocked?repo=R&digest=D
// Names beginning with "_" are not valid chain names, so these never collide with a chain.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { parseImageReference } from '../client/registry-client.js';
import { readBody, sendEmpty, sendJson } from '../registry/respond.js';
import type { RegistryService } from '../registry/service.js';
import { chainSchema, gatePolicySchema, isFinished, type ChainDefinition, type LogLine, type Run } from './model.js';
import type { SyncReport } from '../replicate/sync.js';
import type { ChainStore, RunQuery } from './store.js';
import type { ChainEngine } from './engine.js';
import type { GateIndex } from './gate.js';

export const CHAIN_API_PREFIX = '/api/v1/chains';

export interface ChainApiOptions {
  store: ChainStore;
  engine: ChainEngine;
  gate: GateIndex;
  service: RegistryService;
  /**
   * Decides whether the caller may use the admin API (token auth, issue 5, plugs in here); throw a
   * RegistryError UNAUTHORIZED/DENIED to refuse. Absent: open, as the registry is with auth off.
   */
  authorize?: (req: IncomingMessage) => Promise<void>;
  /** Full sync of a chain's targets (POST /api/v1/chains/{name}/sync). */
  sync?: (chain: ChainDefinition) => Promise<SyncReport>;
}

export function chainApi(opts: ChainApiOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { store, engine, gate, service } = opts;
  return async (req, res) => {
    await opts.authorize?.(req);
    const url = new URL(req.url ?? '/', 'http://local');
    const parts = url.pathname.slice(CHAIN_API_PREFIX.length).split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const [first, second, third] = parts;

    if (parts.length === 0) {
      if (method === 'GET') return sendJson(res, 200, { chains: await store.listChains() });
      if (method === 'POST') {
        const chain = await parseBody(req, chainSchema);
        await store.putChain(chain);
        return sendJson(res, 201, chain);
      }
      throw notAllowed(method, 'GET, POST');
    }

    if (first === '_runs') {
      if (!second) {
        if (method !== 'GET') throw notAllowed(method, 'GET');
        const q: RunQuery = { limit: Math.min(Number(url.searchParams.get('limit') ?? 50) || 50, 1000) };
        for (const k of ['chain', 'repo', 'status'] as const) {
          const v = url.searchParams.get(k);
          if (v) (q as Record<string, unknown>)[k] = v;
        }
        return sendJson(res, 200, { runs: await store.listRuns(q) });
      }
      const run = await store.getRun(second);
      if (!run) throw new RegistryError('NAME_UNKNOWN', `no chain run ${second.slice(0, 64)}`);
      if (third === 'events') return streamRun(req, res, store, engine, run);
      if (method !== 'GET') throw notAllowed(method, 'GET');
      const logs = await store.logs(run.id, Number(url.searchParams.get('logsAfter') ?? 0) || 0);
      return sendJson(res, 200, { run, logs });
    }

    if (first === '_gate') {
      if (second === 'policies') {
        if (!third && method === 'GET') return sendJson(res, 200, { policies: await store.listGatePolicies() });
        const namespace = third === '_' || third === undefined ? '' : parts.slice(2).join('/');
        if (method === 'PUT') {
          const policy = await parseBody(req, gatePolicySchema.omit({ namespace: true }));
          await store.putGatePolicy({ ...policy, namespace });
          return sendJson(res, 200, { ...policy, namespace });
        }
        if (method === 'DELETE') {
          if (!(await store.deleteGatePolicy(namespace))) throw new RegistryError('NAME_UNKNOWN', `no gate policy for namespace "${namespace}"`);
          return sendEmpty(res, 204);
        }
        throw notAllowed(method, 'GET, PUT, DELETE');
      }
      if (second === 'blocked') {
        if (method === 'GET') return sendJson(res, 200, { blocked: await store.listBlocked() });
        if (method === 'DELETE') {
          const repo = url.searchParams.get('repo') ?? '';
          const digest = url.searchParams.get('digest') ?? '';
          parseDigest(digest);
          if (!gate.lookup(repo, digest as Digest)) throw new RegistryError('NAME_UNKNOWN', `${repo}@${digest} is not blocked`);
          await gate.unblock(repo, digest as Digest);
          return sendEmpty(res, 204);
        }
        throw notAllowed(method, 'GET, DELETE');
      }
      throw new RegistryError('NAME_UNKNOWN', `no such endpoint: ${url.pathname}`);
    }

    const name = first!;
    if (!second) {
      if (method === 'GET') {
        const chain = await store.getChain(name);
        if (!chain) throw new RegistryError('NAME_UNKNOWN', `no chain "${name}"`);
        return sendJson(res, 200, chain);
      }
      if (method === 'PUT') {
        const raw = await readJson(req);
        const chain = validate(chainSchema, { ...(raw as object), name });
        await store.putChain(chain);
        return sendJson(res, 200, chain);
      }
      if (method === 'DELETE') {
        if (!(await store.deleteChain(name))) throw new RegistryError('NAME_UNKNOWN', `no chain "${name}"`);
        return sendEmpty(res, 204);
      }
      throw notAllowed(method, 'GET, PUT, DELETE');
    }
    if (second === 'sync') {
      const chain = await store.getChain(name);
      if (!chain) throw new RegistryError('NAME_UNKNOWN', `no chain "${name}"`);
      if (method !== 'POST') throw notAllowed(method, 'POST');
      if (!opts.sync) throw new RegistryError('UNSUPPORTED', 'sync is not available in this process');
      return sendJson(res, 200, await opts.sync(chain));
    }
    if (second === 'runs') {
      const chain = await store.getChain(name);
      if (!chain) throw new RegistryError('NAME_UNKNOWN', `no chain "${name}"`);
      if (method === 'GET') return sendJson(res, 200, { runs: await store.listRuns({ chain: name, limit: 50 }) });
      if (method !== 'POST') throw notAllowed(method, 'GET, POST');
      const { image } = (await readJson(req)) as { image?: unknown };
      if (typeof image !== 'string') throw invalid('body must be {"image": "repo:tag" or "repo@digest"}');
      const ref = parseImageReference(image);
      const manifest = await service.getManifest(ref.repo, ref.reference);
      const run = await engine.trigger(chain, ref.repo, manifest.digest, ref.reference.includes(':') ? undefined : ref.reference, 'manual');
      return sendJson(res, 202, run);
    }
    throw new RegistryError('NAME_UNKNOWN', `no such endpoint: ${url.pathname}`);
  };
}

/** Server-sent events: "run" on every change, "log" per line, then the stream ends with the run. */
async function streamRun(req: IncomingMessage, res: ServerResponse, store: ChainStore, engine: ChainEngine, run: Run): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  let lastSeq = 0;
  const onRun = (r: Run) => {
    if (r.id !== run.id) return;
    send('run', r);
    if (isFinished(r.status)) setImmediate(close);
  };
  const onLog = (l: LogLine) => {
    if (l.runId !== run.id || l.seq <= lastSeq) return;
    lastSeq = l.seq;
    send('log', l);
  };
  const close = () => {
    engine.events.off('run', onRun);
    engine.events.off('log', onLog);
    res.end();
  };
  engine.events.on('run', onRun);
  engine.events.on('log', onLog);
  req.on('close', close);
  send('run', run);
  for (const l of await store.logs(run.id)) onLog(l);
  if (isFinished(run.status)) close();
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req, 1024 * 1024, 'request body');
  try {
    return JSON.parse(body.toString('utf8') || '{}');
  } catch (err) {
    throw invalid(`body is not JSON: ${(err as Error).message}`);
  }
}

async function parseBody<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.output<S>> {
  return validate(schema, await readJson(req));
}

function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
  return parsed.data;
}

const invalid = (message: string) => new RegistryError('INVALID_REQUEST', message);
const notAllowed = (method: string, allowed: string) =>
  new RegistryError('UNSUPPORTED', `${method} is not supported on this endpoint (allowed: ${allowed})`, { status: 405, headers: { Allow: allowed } });
