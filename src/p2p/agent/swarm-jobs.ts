// One download per blob per agent, shared by every client waiting for it: the first request
// starts a TaskDownloader, later ones attach and read pieces as they arrive.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Digest } from '../../oci/digest.js';
import { TaskDownloader, type DownloadResult, type PieceTask } from '../peer/index.js';
import type { PeerNode } from '../node/peer-node.js';

export interface SwarmJob {
  digest: Digest;
  repo: string;
  startedAt: number;
  downloader: TaskDownloader;
  /** Resolves with the open task once the scheduler handed out the piece manifest (null: no manifest, e.g. back-to-source). */
  task: Promise<PieceTask | null>;
  result: Promise<DownloadResult>;
  /** Resolves with a reason when the swarm cannot start this download (scheduler unreachable). */
  unavailable: Promise<string>;
  abort(): void;
  completed: number;
  total: number;
}

export interface SwarmTotals {
  downloads: number;
  completed: number;
  failed: number;
  corruptPieces: number;
  bytesFromPeers: number;
  bytesFromSeed: number;
}

export class SwarmJobs extends EventEmitter {
  private readonly jobs = new Map<Digest, SwarmJob>();
  readonly totals: SwarmTotals = { downloads: 0, completed: 0, failed: 0, corruptPieces: 0, bytesFromPeers: 0, bytesFromSeed: 0 };

  constructor(private readonly node: PeerNode, private readonly log: Logger) {
    super();
  }

  get active(): SwarmJob[] {
    return [...this.jobs.values()];
  }

  /** The running job for a digest, or a new one. */
  get(digest: Digest, repo: string, size?: number): SwarmJob {
    const existing = this.jobs.get(digest);
    if (existing) return existing;
    const { node } = this;
    const ctl = new AbortController();
    const downloader = new TaskDownloader({
      signal: ctl.signal,
      self: node.self,
      digest,
      repo,
      size,
      scheduler: node.scheduler,
      transport: node.transport,
      store: node.store,
      limiter: node.limits.download,
      concurrentDownloads: () => this.jobs.size,
      log: this.log,
    });
    let resolveTask!: (t: PieceTask | null) => void;
    const task = new Promise<PieceTask | null>((r) => (resolveTask = r));
    let markUnavailable!: (reason: string) => void;
    const unavailable = new Promise<string>((r) => (markUnavailable = r));
    const job: SwarmJob = { digest, repo, startedAt: Date.now(), downloader, task, result: undefined as never, unavailable, abort: () => ctl.abort(), completed: 0, total: 0 };
    downloader.on('announce', (ev) => {
      if (!ev.ok && job.total === 0) markUnavailable('scheduler unreachable');
    });
    downloader.on('manifest', (m) => {
      job.total = m.pieceDigests.length;
      const task = node.store.getTask(digest) ?? null;
      // A client stalled on piece i: fetch from there in order first (streaming to containerd).
      task?.on('waiting', (i: number) => downloader.setSequentialFrom(i));
      resolveTask(task);
    });
    downloader.on('piece', (ev) => {
      job.completed = ev.completed;
      const fromSeed = ev.parentId.startsWith('seed-');
      node.bytes.inc({ source: fromSeed ? 'seed' : 'peers' }, ev.bytes);
    });
    this.totals.downloads++;
    job.result = downloader.run();
    this.jobs.set(digest, job);
    node.transport.setDownloads(this.jobs.size);
    job.result
      .then((r) => {
        resolveTask(null);
        if (r.outcome === 'done') {
          this.totals.completed++;
          this.totals.corruptPieces += r.stats.corruptPieces;
          this.totals.bytesFromPeers += r.stats.bytesFromPeers;
          this.totals.bytesFromSeed += r.stats.bytesFromSeed;
          this.log.info({ digest, repo, ms: r.stats.durationMs, fromPeers: r.stats.bytesFromPeers, fromSeed: r.stats.bytesFromSeed, corruptPieces: r.stats.corruptPieces, parents: r.stats.parentsUsed }, 'p2p download done');
        }
      })
      .catch((err) => {
        resolveTask(null);
        this.totals.failed++;
        const stats = (err as { stats?: { corruptPieces?: number } }).stats;
        this.totals.corruptPieces += stats?.corruptPieces ?? 0;
        this.log.warn({ digest, repo, err: (err as Error).message }, 'p2p download failed');
      })
      .finally(() => {
        this.jobs.delete(digest);
        node.transport.setDownloads(this.jobs.size);
      });
    return job;
  }
}
