// The scheduler (tracker) of the P2P layer: the pure core, its HTTP server, and their helpers.
export { SchedulerCore, DEFAULT_SCHEDULER_OPTIONS, type SchedulerCoreOptions, type SchedulerStats, type TaskStatus } from './core.js';
export { SchedulerError, isSchedulerError, type SchedulerErrorCode } from './errors.js';
export { createSchedulerServer, schedulerRoutes, type RouteContext, type SchedulerRoute, type SchedulerServer, type SchedulerServerOptions } from './server.js';
export { createSchedulerMetrics, type SchedulerMetrics } from './metrics.js';
export { createSeedFetcher, type SeedFetcherOptions } from './seed-fetch.js';
export { announceSchema, heartbeatSchema, pieceManifestSchema, publishPiecesSchema, peerInfoSchema } from './schemas.js';
export { seededRandom } from './random.js';
