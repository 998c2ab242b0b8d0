// The fixed parts of docs/sim/REPORT.md: what runs for real and what is modelled, and how to
// reproduce every figure. Kept apart from report.ts, which only arranges numbers.

export function realVsModelled(): string[] {
  return [
    '## What is real code and what is modelled',
    '',
    '| part | in the simulation |',
    '|---|---|',
    '| scheduler | **real**: `SchedulerCore` (announce, heartbeat, publishPieces, expire) with its parent selection, locality buckets, child caps, blocklists and cool-downs, back-to-source grants, seed-fetch effect and announce-interval load shedding; virtual `now`, seeded `random` |',
    '| piece selection | **real**: `PiecePicker` (random first pieces, rarest first, the reader\'s streaming window, endgame) in both engines, seeded per agent and layer |',
    '| downloader, `downloader` engine | **real**: `TaskDownloader` unmodified (parent handling, idle- and busy-parent release, announces, bans, reports, busy back-off, timeouts, stall detection, endgame cancels) on a virtual `Clock`; its `SchedulerClient`, `PeerTransport` and `DownloadTarget` are simulated behind those interfaces |',
    '| downloader, `thin` engine | **re-implemented**: a synchronous loop that follows `TaskDownloader`\'s rules step for step, calling the same `parent-policy.ts` functions for idle- and busy-parent release, early announces, idle limits and busy pauses (see `src/sim/engines/thin.ts` for the list and the three deliberate differences: live bitfields instead of long polls, announces answered at once, timeouts checked at the loop\'s deadlines). Used where the real one is too slow (≈0.3–0.5 ms CPU per piece: ~15 min for 10,000 × 256 pieces); checked against it in "Checks on the model" |',
    '| seeds | modelled: preheat = every seed holds every layer at t=0 (its registry bytes counted as origin); cold = the scheduler\'s real `requestSeedFetch` effect starts a registry→seed transfer, then the seed heartbeats and publishes the manifest through the real core |',
    '| clients | modelled: each agent\'s client (containerd, curl in bench/p2p) asks for `layerConcurrency` blobs at a time and reads each in order, taking no time to read; where it stops on a piece not held, the download gets `TaskDownloader.setSequentialFrom`, as the agent\'s `PieceTask` \'waiting\' event does (`readers`, on unless a scenario says `readers: false`; results before 2026-12-07 had no readers) |',
    '| agents | modelled: the agent starts every layer of the image when the manifest passes through it (`prefetchLayers`, the agent\'s default; without it containerd pulls up to `layerConcurrency` (3) blobs at once); a swarm failure or back-to-source falls back to the registry for the missing bytes (as the agent does); heartbeats every 5 s (seeds 2 s) with the complete digests; `expire()` every 1 s |',
    '| network | modelled: flow level. Every piece is a flow over NIC up → rack → zone → DC uplinks (with oversubscription) → NIC down; rates weighted max-min fair by progressive filling, recomputed once per window after flows start or finish (new flows take the residual capacity meanwhile); an agent\'s uploads are weighted by their children\'s progress as the real agent\'s `UploadShares` does under `--upload-limit` (0.7^rank, the child holding the fewest pieces first; `uploadWeightBase: 1` = even shares, what TCP gives without a limit); RTT before each transfer; an upload slot limit per peer (the peer server\'s own rule, `uploadSlotsFor`: 8 per agent, 32 per seed unless the uplink is advertised) with a short line (the peer server\'s `UploadSlots`: one request waits up to 500 ms for a slot), past which it answers "busy"; a seed serves one piece at a time per child (the peer server\'s `uploadsPerChildFor`; `seedUploadsPerChild: 0` lifts it) and answers a second request "busy" at once; with `superSeedHoldMs` (off by default, as `--super-seed-hold` is) a seed shows only the pieces it has served least (the peer server\'s `SeedView`); with `seedTaskShareMs` (off by default, as `--upload-task-share` is) a seed holds each layer to an even share of its slots among the layers asked for lately (the peer server\'s `TaskSlotShares`). No TCP dynamics, no packet loss, no disk or CPU limits on agents, no hashing |',
    '| failures | modelled: a killed agent stops at once without a goodbye; "crash" resets its connections (children see errors within half an RTT), "hang" leaves them silent (children time out); the scheduler learns from reports and expiry |',
    '| time | virtual: a discrete-event agenda; wall-clock figures are only the simulator\'s own cost and the scheduler CPU measurements |',
    '',
  ];
}

export function reproduce(): string[] {
  return [
    '## Reproduce',
    '',
    '```sh',
    'npm run build',
    'node bin/shoal.js sim --scenario scenarios/fleet-10k-preheat.yaml --json   # headline (a few minutes)',
    'for f in scenarios/*.yaml; do node bin/shoal.js sim --scenario "$f"; done     # every scenario',
    'node bin/shoal.js sim report                                               # this file (or: npm run sim:report)',
    '```',
    '',
    'Results land in `docs/sim/results/<scenario>.json` (every variant, CDF points, scheduler load per virtual second) with a chart `<scenario>.cdf.svg`. A scenario is a small YAML file (see `scenarios/README.md`); `--variant`, `--engine` and `--window-ms` narrow or override a run.',
    '',
  ];
}
