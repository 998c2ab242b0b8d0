// Prometheus metrics for the registry process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface RegistryMetrics {
  registry: Registry;
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route' | 'method'>;
  blobBytesIn: Counter;
  blobBytesOut: Counter;
  cacheHits: Gauge;
  cacheMisses: Gauge;
  gcRuns: Counter<'mode'>;
  gcBlobsDeleted: Counter;
  gcBytesReclaimed: Counter;
}

/**
 * prom-client's process metrics (CPU, memory, GC, event-loop lag) on `registry`. The event-loop lag
 * histogram samples on a timer; prom-client's default 10 ms woke every idle Shoal process 100 times
 * a second (200 syscalls), a tax each of 50 agents on a node-sized machine paid even when idle. At
 * 100 ms the histogram still catches any stall that matters and the idle loop sleeps.
 */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 100 });
}

export function createMetrics(): RegistryMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, 'shoal_');
  return {
    registry,
    requests: new Counter({ name: 'shoal_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'shoal_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    blobBytesIn: new Counter({ name: 'shoal_blob_bytes_received_total', help: 'Blob bytes received in uploads', registers: [registry] }),
    blobBytesOut: new Counter({ name: 'shoal_blob_bytes_sent_total', help: 'Blob bytes sent to clients', registers: [registry] }),
    cacheHits: new Gauge({ name: 'shoal_manifest_cache_hits', help: 'Manifest cache hits since start', registers: [registry] }),
    cacheMisses: new Gauge({ name: 'shoal_manifest_cache_misses', help: 'Manifest cache misses since start', registers: [registry] }),
    gcRuns: new Counter({ name: 'shoal_gc_runs_total', help: 'Garbage collection passes', labelNames: ['mode'], registers: [registry] }),
    gcBlobsDeleted: new Counter({ name: 'shoal_gc_blobs_deleted_total', help: 'Blobs removed by garbage collection', registers: [registry] }),
    gcBytesReclaimed: new Counter({ name: 'shoal_gc_bytes_reclaimed_total', help: 'Bytes reclaimed by garbage collection', registers: [registry] }),
  };
}
