// Preheat: warm the seed peers (or every agent) with an image's blobs before a scale-out, and
// report progress until done. Runs inside the scheduler process, which knows seeds and agents.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { RegistryClient, parseImageReference } from '../../client/registry-client.js';
import type { Digest } from '../../oci/digest.js';
import type { PeerInfo, PreheatRequest, PreheatStatus, SeedFetchRequest } from '../protocol.js';
import { AGENT_PREFETCH_PATH, PATHS } from '../protocol.js';

/** What preheat needs from the scheduler: who is out there and how far each blob has spread. */
export interface PreheatFleet {
  seeds(): PeerInfo[];
  agents(): PeerInfo[];
  /** Seeds that hold the blob complete, and agents that finished it. */
  progress(digest: Digest): { seedsDone: number; agentsDone: number };
}

/** Sends a fetch request to a peer's HTTP API (seeds: /seed/v1/fetch, agents: /agent/v1/prefetch). */
export type FetchSender = (peer: PeerInfo, path: string, body: SeedFetchRequest) => Promise<void>;

export class PreheatManager {
  private readonly jobs = new Map<string, PreheatStatus>();
  /** Agents each job asked to prefetch; one that leaves the fleet (expires, refuses) stops counting. */
  private readonly targets = new Map<string, Set<string>>();

  constructor(
    private readonly fleet: PreheatFleet,
    private readonly send: FetchSender,
    private readonly defaultRegistry: string | undefined,
    private readonly log: Logger,
    private readonly opts: { timeoutMs?: number; pollMs?: number } = {},
  ) {}

  get(id: string): PreheatStatus | undefined {
    const job = this.jobs.get(id);
    if (job && job.state === 'running') this.refresh(job);
    return job;
  }

  start(req: PreheatRequest): PreheatStatus {
    const registry = req.registry ?? this.defaultRegistry;
    if (!registry) throw new Error('no registry: pass "registry" or start the scheduler with --registry');
    const job: PreheatStatus = { id: randomUUID(), image: req.image, scope: req.scope, state: 'resolving', blobs: [], startedAt: Date.now() };
    this.jobs.set(job.id, job);
    void this.run(job, registry, req).catch((err) => {
      job.state = 'failed';
      job.error = (err as Error).message;
      job.finishedAt = Date.now();
      this.log.warn({ preheat: job.id, err: job.error }, 'preheat failed');
    });
    return job;
  }

  private async run(job: PreheatStatus, registry: string, req: PreheatRequest): Promise<void> {
    const { repo, reference } = parseImageReference(req.image);
    const client = new RegistryClient(registry, req.authorization ? { authorization: req.authorization } : {});
    const { blobs } = await client.imageBlobs(repo, reference);
    const seeds = this.fleet.seeds();
    if (seeds.length === 0) throw new Error('no seed peer is registered with the scheduler; start `shoal seed` first');
    const agents = req.scope === 'all' ? this.fleet.agents() : [];
    job.blobs = blobs.map((b) => ({ digest: b.digest, size: b.size, seedsDone: 0, agentsDone: 0, agentsTotal: agents.length }));
    job.state = 'running';
    this.log.info({ preheat: job.id, image: req.image, blobs: blobs.length, seeds: seeds.length, agents: agents.length }, 'preheat started');
    for (const b of blobs) {
      const body: SeedFetchRequest = { digest: b.digest, repo, registry };
      await Promise.all(seeds.map((s) => this.send(s, PATHS.seedFetch, body)));
    }
    // Agents pull through the swarm; asking them after the seeds keeps origin traffic at one copy.
    if (agents.length > 0) {
      const targeted = new Set(agents.map((a) => a.id));
      this.targets.set(job.id, targeted);
      await this.waitFor(job, (b) => b.seedsDone > 0);
      for (const b of blobs) {
        const body: SeedFetchRequest = { digest: b.digest, repo, registry };
        await Promise.all(
          agents.map((a) =>
            this.send(a, AGENT_PREFETCH_PATH, body).catch((err) => {
              targeted.delete(a.id);
              this.log.warn({ agent: a.id, err: (err as Error).message }, 'prefetch request failed; not counting this agent');
            }),
          ),
        );
      }
    }
    await this.waitFor(job, (b) => b.seedsDone >= 1 && b.agentsDone >= b.agentsTotal);
    job.state = 'done';
    job.finishedAt = Date.now();
    this.targets.delete(job.id);
    this.log.info({ preheat: job.id, ms: job.finishedAt - job.startedAt }, 'preheat done');
  }

  private refresh(job: PreheatStatus): void {
    const targeted = this.targets.get(job.id);
    if (targeted) {
      const live = new Set(this.fleet.agents().map((a) => a.id));
      for (const id of targeted) if (!live.has(id)) targeted.delete(id);
    }
    for (const b of job.blobs) {
      Object.assign(b, this.fleet.progress(b.digest));
      if (targeted) b.agentsTotal = targeted.size;
    }
  }

  private async waitFor(job: PreheatStatus, done: (b: PreheatStatus['blobs'][number]) => boolean): Promise<void> {
    const deadline = Date.now() + (this.opts.timeoutMs ?? 30 * 60_000);
    for (;;) {
      this.refresh(job);
      if (job.blobs.every(done)) return;
      if (Date.now() > deadline) throw new Error(`preheat timed out with ${job.blobs.filter((b) => !done(b)).length} of ${job.blobs.length} blobs not warm`);
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 250));
    }
  }
}
