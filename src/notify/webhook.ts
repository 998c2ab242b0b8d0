// Webhooks for chain events: CloudEvents 1.0 in structured JSON mode, signed with HMAC-SHA256 over
// the raw body (header X-Shoal-Signature: sha256=<hex>), retried with back-off.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { request } from 'undici';
import type { Run, StageRun } from '../chain/model.js';
import type { Webhook } from '../chain/model.js';
import { backoffDelay, sleepUnlessAborted } from '../chain/stage.js';

export const SIGNATURE_HEADER = 'x-shoal-signature';
export type ChainEventType = 'chain.run.started' | 'chain.stage.finished' | 'chain.run.blocked' | 'chain.run.succeeded' | 'chain.run.failed';

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: ChainEventType;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: unknown;
}

export function chainEvent(type: ChainEventType, run: Run, source: string, stage?: StageRun): CloudEvent {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type,
    subject: `${run.repo}@${run.digest}`,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: {
      run: { id: run.id, chain: run.chain, repo: run.repo, digest: run.digest, tag: run.tag, trigger: run.trigger, status: run.status, reason: run.reason },
      ...(stage ? { stage: { name: stage.name, status: stage.status, attempts: stage.attempts, error: stage.error, ms: (stage.finishedAt ?? 0) - (stage.startedAt ?? 0) } } : {}),
      stages: run.stages.map((s) => ({ name: s.name, status: s.status })),
    },
  };
}

export function sign(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** For receivers: constant-time check of the signature header against the raw body. */
export function verifySignature(secret: string, body: Buffer | string, header: string | undefined): boolean {
  if (!header) return false;
  const expected = Buffer.from(sign(secret, body));
  const got = Buffer.from(header);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

export interface DeliveryOptions {
  attempts: number;
  backoffMs: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Posts one event; retries on network errors and non-2xx answers. Throws after the last attempt. */
export async function deliver(hook: Webhook, event: CloudEvent, opts: DeliveryOptions): Promise<void> {
  if (hook.events && !hook.events.includes(event.type)) return;
  const body = Buffer.from(JSON.stringify(event));
  const headers: Record<string, string> = { 'content-type': 'application/cloudevents+json; charset=utf-8', 'user-agent': 'shoal-webhook/0.1', 'ce-id': event.id, 'ce-type': event.type };
  if (hook.secret) headers[SIGNATURE_HEADER] = sign(hook.secret, body);
  let lastError = '';
  for (let attempt = 1; attempt <= Math.max(1, opts.attempts); attempt++) {
    try {
      const res = await request(hook.url, { method: 'POST', headers, body, headersTimeout: opts.timeoutMs ?? 10_000, bodyTimeout: opts.timeoutMs ?? 10_000, signal: opts.signal });
      res.body.resume();
      if (res.statusCode >= 200 && res.statusCode < 300) return;
      lastError = `answered ${res.statusCode}`;
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      lastError = (err as Error).message;
    }
    if (attempt < opts.attempts) await sleepUnlessAborted(backoffDelay(opts.backoffMs, attempt), opts.signal);
  }
  throw new Error(`webhook ${hook.url}: ${event.type} not delivered after ${opts.attempts} attempt(s): ${lastError}`);
}
