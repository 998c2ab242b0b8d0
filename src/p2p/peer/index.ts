// The peer library: what the seed peer, the node agent and the fleet simulator import.
export { Bitfield } from './bitfield.js';
export { systemClock, type Clock } from './clock.js';
export { PeerError, PeerTransportError, isPeerError, isTransportError, type PeerErrorCode, type TransportErrorKind } from './errors.js';
export { MAX_PIECE_SIZE, ManifestHasher, buildManifest, pieceBounds, sameManifest, validateManifest } from './manifest.js';
export { RateLimiter, DEFAULT_BURST, pace, paced, type ByteLimiter, type RateLimiterOptions } from './rate-limiter.js';
export { UploadShares, progressWeight, DEFAULT_UPLOAD_WEIGHT_BASE, type UploadShare, type UploadSharesOptions } from './upload-shares.js';
export { PieceTask, type PieceTaskEvents, type PieceTaskState } from './piece-task.js';
export { PieceStore, type GcResult, type PieceStoreEvents, type PieceStoreOptions } from './piece-store.js';
export { PiecePicker, losersOf, type Assignment, type PickInput, type PickerOptions, type PickerParent, type PieceSet } from './picker.js';
export {
  DownloadError,
  TaskDownloader,
  type DownloadResult,
  type DownloadStats,
  type DownloadTarget,
  type DownloaderEvents,
  type PeerLogger,
  type PeerTransport,
  type SchedulerClient,
  type TaskDownloaderOptions,
  type TaskOpener,
} from './downloader.js';
export { createPeerRoutes, type PeerRouteStats, type PeerRoutes, type PeerRoutesOptions } from './server-routes.js';
export { HttpPeerTransport, HttpSchedulerClient, type HttpSchedulerClientOptions, type HttpTransportOptions } from './http-transport.js';
export { LocalTransport, type LocalPeerHooks, type LocalTransportOptions } from './local-transport.js';
