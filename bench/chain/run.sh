#!/usr/bin/env bash
# Delivery-chain benchmark: time from push to "available in the second registry and preheated".
#
#   npm run bench:chain                  full run: a 1 GiB image (8 layers of 128 MiB random data)
#   BENCH_QUICK=1 npm run bench:chain    quick smoke run: 4 layers of 8 MiB
#
# Knobs (env): BENCH_QUICK=1, BENCH_LAYERS, BENCH_LAYER_MIB, BENCH_TIMEOUT_S (whole run; default 900, quick 180),
#   BENCH_KEEP_LOGS=DIR (copy the process logs there).
# It starts, on 127.0.0.1/127.0.0.2/127.0.0.3: `shoal serve` (chains on, fixture advisories imported), Debian's
# docker-registry (the second registry), `shoal scheduler` and `shoal seed`; adds a chain (scan → gate →
# replicate → preheat → notify, webhooks off) and a gate policy; pushes the image (each layer a tar with one
# random file; the first also carries a dpkg status) over HTTP; and follows the push-triggered run.
# Reported: push time, push → preheated (the figure), each stage's time, the scan rate in MiB/s of layer data,
# replication MiB/s. Progress goes to stderr; the last stdout line is one JSON object.
# Every process is stopped by pid on exit; temp dirs are removed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
[ -f dist/cli/main.js ] || npm run build >&2
command -v docker-registry >/dev/null || { echo "bench: docker-registry not installed (scripts/install-deps.sh)" >&2; exit 2; }
exec node bench/chain/bench.mjs
