// The chain admin API as tests call it: JSON in, status + JSON out; and polling for a finished run.
import type { Run } from '../../../src/chain/model.js';

export type ChainApi = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: any }>;

export function chainApiClient(registryUrl: string): ChainApi {
  return async (method, path, body) => {
    const res = await fetch(`${registryUrl}/api/v1/chains${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
}

/** The first finished run of `chain` that `pred` picks (polls the API; 20 s at most). */
export async function waitForRun(api: ChainApi, chain: string, pred: (r: Run) => boolean): Promise<Run> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { json } = await api('GET', `/_runs?chain=${chain}`);
    const run = (json.runs as Run[]).find(pred);
    if (run && ['succeeded', 'failed', 'blocked'].includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`no finished run: ${JSON.stringify(json.runs.map((r: Run) => r.status))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
