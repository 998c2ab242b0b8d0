// The preheat stage against a stand-in scheduler speaking the preheat API: request shape, polling
// until done with progress, failures surfaced, clusters already done not asked again on retry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { preheatStage } from '../../../src/chain/stages.js';
import { chainSchema, STAGE_NAMES, type Run } from '../../../src/chain/model.js';
import type { StageContext } from '../../../src/chain/stage.js';

const DIGEST = `sha256:${'f'.repeat(64)}` as const;

describe('preheat stage', () => {
  let server: Server;
  let url: string;
  const requests: Array<Record<string, unknown>> = [];
  let polls = 0;
  let finalState: 'done' | 'failed' = 'done';
  before(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.method === 'POST' && req.url === '/scheduler/v1/preheat') {
          requests.push(JSON.parse(Buffer.concat(parts).toString()));
          polls = 0;
          return res.writeHead(202).end(JSON.stringify({ id: '00000000-0000-0000-0000-000000000001', state: 'resolving', blobs: [] }));
        }
        polls++;
        const warm = polls >= 2 ? 1 : 0;
        const state = polls >= 3 ? finalState : 'running';
        res.writeHead(200).end(
          JSON.stringify({
            id: 'x',
            state,
            error: state === 'failed' ? 'seed unreachable' : undefined,
            blobs: [
              { digest: 'a', size: 100, seedsDone: 1, agentsDone: 0, agentsTotal: 0 },
              { digest: 'b', size: 300, seedsDone: warm, agentsDone: 0, agentsTotal: 0 },
            ],
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const ctxFor = (progress: Array<[number, number]>, logs: string[], attemptState: Record<string, unknown> = {}): StageContext => {
    const chain = chainSchema.parse({ name: 'p', repositories: ['**'], preheat: { clusters: [{ name: 'eu', scheduler: url, repository: 'mirror/{repo}', registry: 'http://eu:5000' }] } });
    const run: Run = { id: 'r', chain: 'p', repo: 'team/app', digest: DIGEST, trigger: 'push', status: 'running', createdAt: 0, stages: STAGE_NAMES.map((name) => ({ name, status: 'pending', attempts: 0 })) };
    return { run, chain, signal: AbortSignal.timeout(10_000), attempt: 1, attemptState, log: (m) => logs.push(m), progress: (d, t) => progress.push([d, t]), outputOf: () => undefined };
  };

  it('asks each cluster for the image under its name there and waits until every blob is warm', async () => {
    const progress: Array<[number, number]> = [];
    const logs: string[] = [];
    const out = await preheatStage({ pollMs: 10 }).run(ctxFor(progress, logs));
    assert.equal(out.status, 'succeeded');
    assert.deepEqual(requests.at(-1), { image: `mirror/team/app@${DIGEST}`, scope: 'seed', registry: 'http://eu:5000' });
    assert.deepEqual(progress[0], [100, 400]);
    assert.deepEqual(progress.at(-1), [400, 400]);
    assert.ok(logs.some((l) => /2 blob\(s\) warm/.test(l)));
  });

  it('a failed job fails the attempt with the scheduler\'s reason; a done cluster is not asked again', async () => {
    finalState = 'failed';
    await assert.rejects(preheatStage({ pollMs: 10 }).run(ctxFor([], [])), /preheat on eu failed: seed unreachable/);
    finalState = 'done';
    const before = requests.length;
    const out = await preheatStage({ pollMs: 10 }).run(ctxFor([], [], { done: { eu: { name: 'eu', job: 'j', blobs: 2, ms: 1 } } }));
    assert.equal(out.status, 'succeeded');
    assert.equal(requests.length, before);
  });
});
