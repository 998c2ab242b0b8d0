// Prometheus metrics of the scheduler. Counters and gauges read the core's stats() at scrape time
// (collect callbacks), so the hot path never touches prom-client; only per-request HTTP metrics
// are recorded as requests finish.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../../server/metrics.js';
import type { SchedulerCore, SchedulerStats } from './core.js';

export interface SchedulerMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route'>;
}

type CounterKey = 'announces' | 'heartbeats' | 'parentsHandedOut' | 'badPeerReports' | 'blocklistings' | 'cooldowns' | 'seedFetchRequests' | 'seedFetchFailures' | 'backToSourceGrants' | 'manifestsPublished' | 'manifestConflicts' | 'peersExpired';
type GaugeKey = 'activePeers' | 'activeSeeds' | 'activeTasks' | 'activeMembers' | 'blocklistedPeers' | 'backToSourceActive' | 'announceIntervalMs';

const COUNTERS: Record<CounterKey, [string, string]> = {
  announces: ['shoal_scheduler_announces_total', 'Announces handled'],
  heartbeats: ['shoal_scheduler_heartbeats_total', 'Heartbeats handled'],
  parentsHandedOut: ['shoal_scheduler_parents_handed_out_total', 'New parent assignments handed out'],
  badPeerReports: ['shoal_scheduler_bad_peer_reports_total', 'Bad-parent reports accepted from peers'],
  blocklistings: ['shoal_scheduler_blocklistings_total', 'Peers blocklisted for a task after serving a corrupt piece'],
  cooldowns: ['shoal_scheduler_cooldowns_total', 'Peers put in cool-down after reports from several peers'],
  seedFetchRequests: ['shoal_scheduler_seed_fetch_requests_total', 'Seed fetch requests (origin fetches by seeds)'],
  seedFetchFailures: ['shoal_scheduler_seed_fetch_failures_total', 'Seed fetches that failed, timed out or lost their seed'],
  backToSourceGrants: ['shoal_scheduler_back_to_source_grants_total', 'Peers told to fetch from the registry themselves'],
  manifestsPublished: ['shoal_scheduler_manifests_published_total', 'Piece manifests accepted'],
  manifestConflicts: ['shoal_scheduler_manifest_conflicts_total', 'Piece manifests rejected because a different one was published first'],
  peersExpired: ['shoal_scheduler_peers_expired_total', 'Peers dropped for not announcing or heartbeating'],
};

const GAUGES: Record<GaugeKey, [string, string]> = {
  activePeers: ['shoal_scheduler_active_peers', 'Peers (agents and seeds) known and not expired'],
  activeSeeds: ['shoal_scheduler_active_seeds', 'Seed peers known and not expired'],
  activeTasks: ['shoal_scheduler_active_tasks', 'Tasks (blobs) with a swarm'],
  activeMembers: ['shoal_scheduler_active_swarm_members', 'Agent-task pairs: the announce load'],
  blocklistedPeers: ['shoal_scheduler_blocklisted_peers', 'Task blocklist entries plus peers in cool-down'],
  backToSourceActive: ['shoal_scheduler_back_to_source_active', 'Back-to-source grants held now'],
  announceIntervalMs: ['shoal_scheduler_announce_interval_ms', 'Announce interval handed out now (raised under load)'],
};

/** Registers the scheduler's metrics on `registry` (a new one by default, with process metrics). */
export function createSchedulerMetrics(core: SchedulerCore, registry?: Registry): SchedulerMetrics {
  const reg = registry ?? new Registry();
  // Process CPU/memory/event-loop metrics, unless the shared registry already has them.
  if (!reg.getSingleMetric('shoal_process_cpu_seconds_total') && !reg.getSingleMetric('process_cpu_seconds_total')) {
    collectProcessMetrics(reg, 'shoal_');
  }
  // One stats() snapshot per scrape, shared by every collect callback in that scrape.
  let snapshot: SchedulerStats | undefined;
  let snapshotAt = 0;
  const stats = () => {
    const t = Date.now();
    if (!snapshot || t - snapshotAt > 100) {
      snapshot = core.stats();
      snapshotAt = t;
    }
    return snapshot;
  };
  for (const [key, [name, help]] of Object.entries(COUNTERS) as Array<[CounterKey, [string, string]]>) {
    let last = 0;
    new Counter({
      name,
      help,
      registers: [reg],
      collect() {
        const v = stats()[key];
        if (v > last) this.inc(v - last);
        last = v;
      },
    });
  }
  for (const [key, [name, help]] of Object.entries(GAUGES) as Array<[GaugeKey, [string, string]]>) {
    new Gauge({
      name,
      help,
      registers: [reg],
      collect() {
        this.set(stats()[key]);
      },
    });
  }
  return {
    registry: reg,
    requests: new Counter({ name: 'shoal_scheduler_http_requests_total', help: 'Scheduler HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [reg] }),
    duration: new Histogram({
      name: 'shoal_scheduler_http_request_duration_seconds',
      help: 'Scheduler HTTP request latency by route',
      labelNames: ['route'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers: [reg],
    }),
  };
}
