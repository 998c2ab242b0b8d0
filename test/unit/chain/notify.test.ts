// Webhook delivery: CloudEvents shape, HMAC over the raw body, retries with back-off on failures,
// event filters; and the watch table rendering.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chainEvent, deliver, sign, verifySignature, SIGNATURE_HEADER } from '../../../src/notify/webhook.js';
import { renderRunTable, bar } from '../../../src/chain/render.js';
import { STAGE_NAMES, type Run } from '../../../src/chain/model.js';

const run: Run = {
  id: 'run-1',
  chain: 'ship',
  repo: 'team/app',
  digest: `sha256:${'e'.repeat(64)}`,
  tag: 'v1',
  trigger: 'push',
  status: 'running',
  createdAt: 1,
  stages: STAGE_NAMES.map((name) => ({ name, status: 'pending', attempts: 0 })),
};

describe('webhooks', () => {
  let server: Server;
  let url: string;
  let failFirst = 0;
  const got: Array<{ body: string; sig?: string; type?: string }> = [];
  before(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        if (failFirst-- > 0) return res.writeHead(503).end();
        got.push({ body: Buffer.concat(parts).toString(), sig: req.headers[SIGNATURE_HEADER] as string, type: req.headers['content-type'] });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/h`;
  });
  after(() => server.close());

  it('is a signed CloudEvent, delivered after transient failures', async () => {
    failFirst = 2;
    const ev = chainEvent('chain.run.succeeded', { ...run, status: 'succeeded' }, '/shoal/chains');
    await deliver({ url, secret: 'k' }, ev, { attempts: 3, backoffMs: 10 });
    assert.equal(got.length, 1);
    const body = JSON.parse(got[0]!.body);
    assert.deepEqual([body.specversion, body.type, body.subject, body.source], ['1.0', 'chain.run.succeeded', `team/app@${run.digest}`, '/shoal/chains']);
    assert.match(got[0]!.type!, /application\/cloudevents\+json/);
    assert.equal(got[0]!.sig, sign('k', got[0]!.body));
    assert.ok(verifySignature('k', got[0]!.body, got[0]!.sig));
    assert.ok(!verifySignature('k', got[0]!.body + ' ', got[0]!.sig));
    assert.ok(!verifySignature('k', got[0]!.body, undefined));
  });

  it('gives up after the last attempt with the reason, and honours event filters', async () => {
    failFirst = 5;
    await assert.rejects(deliver({ url }, chainEvent('chain.run.failed', run, 's'), { attempts: 2, backoffMs: 5 }), /not delivered after 2 attempt\(s\): answered 503/);
    failFirst = 0;
    const before = got.length;
    await deliver({ url, events: ['chain.run.blocked'] }, chainEvent('chain.run.started', run, 's'), { attempts: 1, backoffMs: 0 });
    assert.equal(got.length, before, 'filtered out');
  });
});

describe('watch rendering', () => {
  it('shows each stage with status, progress bar and recent log lines', () => {
    const r: Run = structuredClone(run);
    r.stages[0] = { name: 'scan', status: 'succeeded', attempts: 1, startedAt: 0, finishedAt: 1500 };
    r.stages[2] = { name: 'replicate', status: 'running', attempts: 2, startedAt: Date.now(), progress: { done: 512 * 1024 * 1024, total: 1024 * 1024 * 1024, unit: 'bytes' } };
    const text = renderRunTable(r, [{ seq: 1, runId: 'run-1', at: 0, stage: 'replicate', message: 'attempt 1 failed' }], 120);
    assert.match(text, /✔ scan\s+succeeded\s+1\.5 s/);
    assert.match(text, /▶ replicate running\s+×2 .*50%.*512\.0 MiB\/1\.0 GiB/);
    assert.match(text, /attempt 1 failed/);
    assert.equal(bar(0, 0, 4), '[    ]   0%');
  });
});
