#!/usr/bin/env bash
# Registry benchmark: Shoal against CNCF Distribution 2.8 (Debian's docker-registry) on this machine.
#
#   npm run bench:registry                 full run (256 MiB push layer, 1 GiB pull blob, 3 x 10 s wrk per load)
#   BENCH_QUICK=1 npm run bench:registry   quick run (32 MiB push, 128 MiB pull, 1 x 3 s wrk)
#
# Knobs (env): BENCH_QUICK=1, BENCH_PUSH_MIB, BENCH_PULL_MIB, BENCH_WRK_SECONDS, BENCH_RUNS (default 3),
#   BENCH_WRK_RUNS (wrk runs per connection count, default 3, quick 1; the median-req/s run is reported),
#   BENCH_ONLY=shoal|dist (measure one side only; ratios are then n/a),
#   BENCH_IDLE_WAIT_S (default 120: before each registry, wait at most this long for the machine to be >= 85 % idle),
#   BENCH_SHOAL_LOG_LEVEL (default warn), BENCH_SHOAL_NODE_ARGS (extra node flags for the Shoal server,
#   e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_KEEP_LOGS=DIR (copy server logs there before cleanup).
#
# What it measures, for each registry in turn (Distribution first, then Shoal):
#   1. push: `skopeo copy` of a one-layer OCI layout (tar+gzip level 1 of one random file) to a freshly started
#      registry with empty storage, skopeo's blob-info cache deleted before each run; median MiB/s over the runs.
#   2. pull: a random blob uploaded monolithically (POST + PUT), digest checked once with sha256sum on a
#      download, then `curl -o /dev/null` GETs; median MiB/s.
#   3. manifest GET by tag with wrk --latency at 50 and 500 connections; the registry pinned to CPU 0 and wrk
#      to CPU 1 (taskset), after a 2 s warm-up.
#   4. peak VmRSS of every registry process, sampled every 200 ms from /proc/<pid>/status.
# Progress goes to stderr; the table and, as the very last line, one JSON object go to stdout.
# Only 127.0.0.1 is used. Every process started here is stopped by pid on exit; temp dirs are removed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/registry"
lib() { node "$HERE/lib.mjs" "$@"; }

if [ "${BENCH_QUICK:-0}" = "1" ]; then
  MODE=quick
  PUSH_MIB=${BENCH_PUSH_MIB:-32}
  PULL_MIB=${BENCH_PULL_MIB:-128}
  WRK_S=${BENCH_WRK_SECONDS:-3}
  WRK_RUNS=${BENCH_WRK_RUNS:-1}
else
  MODE=full
  PUSH_MIB=${BENCH_PUSH_MIB:-256}
  PULL_MIB=${BENCH_PULL_MIB:-1024}
  WRK_S=${BENCH_WRK_SECONDS:-10}
  WRK_RUNS=${BENCH_WRK_RUNS:-3}
fi
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-}
SHOAL_LOG_LEVEL=${BENCH_SHOAL_LOG_LEVEL:-warn}
read -r -a SHOAL_NODE_ARGS <<<"${BENCH_SHOAL_NODE_ARGS:-}"
SKOPEO_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb
ACCEPT_MANIFEST='application/vnd.oci.image.manifest.v1+json'
for v in PUSH_MIB PULL_MIB WRK_S WRK_RUNS RUNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
(( RUNS <= 20 && WRK_RUNS <= 10 && WRK_S <= 120 )) || { echo "bench: BENCH_RUNS <= 20, BENCH_WRK_RUNS <= 10, BENCH_WRK_SECONDS <= 120" >&2; exit 2; }
case "$ONLY" in ''|shoal|dist) ;; *) echo "bench: BENCH_ONLY must be shoal or dist" >&2; exit 2 ;; esac

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")
RESULTS="$WORK/results"
: >"$RESULTS"
PIDS=()          # every background process we started and have not yet stopped
SERVER_PID=''    # the registry under test
SAMPLER_PID=''   # its RSS sampler
SERVER_LOG=''

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Stops one pid we started: TERM, up to 10 s, then KILL; reaps it.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

cleanup() {
  local rc=$? p i alive
  set +e
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for ((i = 0; i < 100; i++)); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then mkdir -p "$BENCH_KEEP_LOGS" && cp "$WORK"/*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites
need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "installing ${need_apt[*]} with apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}" >&2 || die "apt-get install ${need_apt[*]} failed"
fi
for t in curl sha256sum taskset node jq awk; do command -v "$t" >/dev/null || die "$t is required"; done
NCPU=$(nproc)
(( NCPU >= 2 )) || log "warning: only $NCPU CPU; the registry and wrk will share it"

cd "$ROOT"
if lib stale "$ROOT"; then
  log "dist/ is missing or older than src/: npm run build"
  npm run build >&2 || die "npm run build failed"
fi

# ---------------------------------------------------------------- helpers
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
result() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# Samples VmRSS (kB) of $1 every 200 ms into the file $2 (peak so far) until the process is gone (at most 2 h).
rss_sampler() {
  local pid=$1 out=$2 peak=0 i k v
  for ((i = 0; i < 36000; i++)); do
    v=''
    while IFS=':' read -r k v; do
      if [ "$k" = VmRSS ]; then v=${v//[!0-9]/}; break; fi
      v=''
    done 2>/dev/null <"/proc/$pid/status" || break
    [ -n "$v" ] || break # exited (a zombie has no VmRSS)
    if (( v > peak )); then peak=$v; echo "$peak" >"$out"; fi
    sleep 0.2
  done
}

INSTANCE=0
# start_server WHO DATA PORT [CPU]: starts Distribution or Shoal, its RSS sampler, and waits for /v2/.
start_server() {
  local who=$1 data=$2 port=$3 cpu=${4:-} pin=() i
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
  INSTANCE=$((INSTANCE + 1))
  mkdir -p "$data"
  SERVER_LOG="$WORK/$who.log"
  echo "---- instance $INSTANCE port $port cpu ${cpu:-any} $(date +%T)" >>"$SERVER_LOG"
  if [ "$who" = dist ]; then
    local cfg="$WORK/dist-$INSTANCE.yml"
    cat >"$cfg" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: shoal-bench-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    "${pin[@]}" docker-registry serve "$cfg" >>"$SERVER_LOG" 2>&1 &
  else
    "${pin[@]}" node "${SHOAL_NODE_ARGS[@]}" "$ROOT/bin/shoal.js" serve --listen "127.0.0.1:$port" --data "$data" \
      --log-level "$SHOAL_LOG_LEVEL" >>"$SERVER_LOG" 2>&1 &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  rss_sampler "$SERVER_PID" "$WORK/rss.$who.$INSTANCE" &
  SAMPLER_PID=$!
  PIDS+=("$SAMPLER_PID")
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/v2/" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$SERVER_LOG" >&2; die "$who exited during start-up"; }
    sleep 0.05
  done
  tail -n 20 "$SERVER_LOG" >&2
  die "$who did not answer /v2/ on 127.0.0.1:$port within 15 s"
}

stop_server() {
  stop_pid "$SERVER_PID"
  stop_pid "$SAMPLER_PID"
  SERVER_PID=''
  SAMPLER_PID=''
}

peak_rss_mib() {
  local who=$1 f peak=0 v
  for f in "$WORK"/rss."$who".*; do
    [ -f "$f" ] || continue
    v=$(cat "$f")
    (( v > peak )) && peak=$v
  done
  fdiv "$peak" 1024
}

# Monolithic upload: POST to open a session, PUT the whole file with ?digest=.
upload_blob() {
  local base=$1 repo=$2 file=$3 digest=$4 loc sep code
  loc=$(curl -fsS -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  [ -n "$loc" ] || die "upload POST to $base gave no Location"
  case "$loc" in http*) ;; *) loc="$base$loc" ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -T "$file" "$loc${sep}digest=$digest")
  [ "$code" = 201 ] || die "upload PUT to $base answered $code"
}

# CPU idle percentage of the whole machine over one second.
cpu_idle_pct() {
  local c u n s i w q sq st a1 i1 a2 i2
  read -r c u n s i w q sq st _ </proc/stat
  a1=$((u + n + s + i + w + q + sq + st)); i1=$((i + w))
  sleep 1
  read -r c u n s i w q sq st _ </proc/stat
  a2=$((u + n + s + i + w + q + sq + st)); i2=$((i + w))
  echo $(( (a2 > a1) ? 100 * (i2 - i1) / (a2 - a1) : 100 ))
}

# Other work on this 2-core machine distorts every figure: wait (bounded) for it to quieten.
wait_for_idle() {
  local max=$1 t idle=0
  for ((t = 0; t < max; t++)); do
    idle=$(cpu_idle_pct)
    (( idle >= 85 )) && return 0
    (( t % 15 == 0 )) && log "machine busy (CPU idle ${idle}%); waiting up to ${max} s for other work to finish"
  done
  log "warning: CPU still only ${idle}% idle after ${max} s; measuring anyway (figures will be noisy)"
}

# ---------------------------------------------------------------- inputs
log "mode $MODE: push layer ${PUSH_MIB} MiB x $RUNS runs, pull blob ${PULL_MIB} MiB x $RUNS runs, wrk ${WRK_S} s at c50 and c500"
log "work dir $WORK"
PUSH_LAYOUT="$WORK/push-layout"
PUSH_BYTES=$(lib layout "$PUSH_LAYOUT" $((PUSH_MIB * 1024 * 1024)) bench)
SMALL_LAYOUT="$WORK/small-layout"
lib layout "$SMALL_LAYOUT" 4096 v1 >/dev/null
skopeo inspect "oci:$PUSH_LAYOUT:bench" >/dev/null || die "skopeo cannot read the generated OCI layout"
PULL_BLOB="$WORK/pull.blob"
head -c $((PULL_MIB * 1024 * 1024)) /dev/urandom >"$PULL_BLOB"
PULL_BYTES=$(stat -c %s "$PULL_BLOB")
PULL_DIGEST="sha256:$(sha256sum "$PULL_BLOB" | awk '{ print $1 }')"
rm -f "$PULL_BLOB.check"
log "push layer $(fdiv "$PUSH_BYTES" 1048576) MiB (tar+gzip -1), pull blob $PULL_DIGEST"

DIST_VERSION=$(docker-registry --version 2>/dev/null | awk '{ print $3 }' || true)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
result mode "$MODE"
result dist_version "${DIST_VERSION:-2.8}"
result host "$NCPU CPUs, ${CPU_MODEL:-unknown CPU}, node $(node --version)"
result params "push: skopeo copy of a ${PUSH_MIB} MiB random layer, fresh storage each run; pull: curl GET of a ${PULL_MIB} MiB blob; $RUNS runs each, median; manifest: wrk -t1 ${WRK_RUNS}x${WRK_S}s (median run), registry on CPU 0, wrk on CPU 1; Shoal --log-level $SHOAL_LOG_LEVEL, Distribution log warn + access log off"
result push_layer_mib "$(fdiv "$PUSH_BYTES" 1048576)"
result pull_blob_mib "$(fdiv "$PULL_BYTES" 1048576)"
result wrk_duration_s "$WRK_S"
result wrk_runs "$WRK_RUNS"
result runs "$RUNS"

# ---------------------------------------------------------------- one registry
bench_one() {
  local who=$1 run port data base secs rate out code size t0 t1 i
  local push_rates=() pull_rates=() load_start
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)

  # 1. push, fresh storage each run
  for ((run = 1; run <= RUNS; run++)); do
    data="$WORK/data-$who-push-$run"
    port=$(lib port)
    start_server "$who" "$data" "$port"
    rm -f "$SKOPEO_CACHE"
    t0=$EPOCHREALTIME
    skopeo copy --quiet --dest-tls-verify=false "oci:$PUSH_LAYOUT:bench" "docker://127.0.0.1:$port/bench/push:$run" \
      >>"$WORK/skopeo.log" 2>&1 || { tail -n 20 "$WORK/skopeo.log" >&2; die "skopeo push to $who failed"; }
    t1=$EPOCHREALTIME
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT_MANIFEST" "http://127.0.0.1:$port/v2/bench/push/manifests/$run")
    [ "$code" = 200 ] || die "$who: pushed manifest bench/push:$run answers $code"
    secs=$(elapsed "$t0" "$t1")
    rate=$(fdiv "$(fdiv "$PUSH_BYTES" 1048576)" "$secs")
    push_rates+=("$rate")
    log "$who push run $run: ${secs} s, $rate MiB/s"
    stop_server
    rm -rf "$data"
  done
  rm -f "$SKOPEO_CACHE"
  result "${who}_push_mib_s" "$(median "${push_rates[@]}")"
  result "detail.${who} push runs (MiB/s)" "${push_rates[*]}"

  # 2. pull
  data="$WORK/data-$who"
  port=$(lib port)
  base="http://127.0.0.1:$port"
  start_server "$who" "$data" "$port"
  upload_blob "$base" bench/pull "$PULL_BLOB" "$PULL_DIGEST"
  out=$(curl -fsS "$base/v2/bench/pull/blobs/$PULL_DIGEST" | sha256sum | awk '{ print $1 }')
  [ "sha256:$out" = "$PULL_DIGEST" ] || die "$who: downloaded blob has digest sha256:$out, expected $PULL_DIGEST"
  log "$who pull: digest verified"
  result pull_digest_verified yes
  for ((run = 1; run <= RUNS; run++)); do
    read -r code size secs < <(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$base/v2/bench/pull/blobs/$PULL_DIGEST")
    [ "$code" = 200 ] && [ "$size" = "$PULL_BYTES" ] || die "$who pull run $run: status $code, $size bytes (expected $PULL_BYTES)"
    rate=$(fdiv "$(fdiv "$size" 1048576)" "$secs")
    pull_rates+=("$rate")
    log "$who pull run $run: ${secs} s, $rate MiB/s"
  done
  result "${who}_pull_mib_s" "$(median "${pull_rates[@]}")"
  result "detail.${who} pull runs (MiB/s)" "${pull_rates[*]}"

  # 3. manifest GET: push a small image, restart pinned to CPU 0 on the same storage, wrk on CPU 1
  rm -f "$SKOPEO_CACHE"
  skopeo copy --quiet --dest-tls-verify=false "oci:$SMALL_LAYOUT:v1" "docker://127.0.0.1:$port/bench/manifest:v1" \
    >>"$WORK/skopeo.log" 2>&1 || { tail -n 20 "$WORK/skopeo.log" >&2; die "skopeo push of the small image to $who failed"; }
  rm -f "$SKOPEO_CACHE"
  stop_server
  port=$(lib port)
  base="http://127.0.0.1:$port"
  start_server "$who" "$data" "$port" 0
  local url="$base/v2/bench/manifest/manifests/v1"
  read -r code ctype < <(curl -sS -o /dev/null -w '%{http_code} %{content_type}\n' -H "Accept: $ACCEPT_MANIFEST" "$url")
  [ "$code" = 200 ] || die "$who: GET $url answered $code"
  log "$who manifest: 200 $ctype"
  taskset -c 1 wrk -t1 -c50 -d2s -H "Accept: $ACCEPT_MANIFEST" "$url" >/dev/null 2>&1 || die "wrk warm-up against $who failed"
  for c in 50 500; do
    local runs_json="$WORK/wrk-$who-c$c.jsonl" j r
    : >"$runs_json"
    for ((r = 1; r <= WRK_RUNS; r++)); do
      out="$WORK/wrk-$who-c$c-$r.txt"
      taskset -c 1 wrk -t1 -c"$c" -d"${WRK_S}s" --timeout 5s --latency -H "Accept: $ACCEPT_MANIFEST" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk c$c against $who failed"; }
      j=$(lib wrk "$out")
      echo "$j" >>"$runs_json"
      log "$who manifest c$c run $r: $(jq -c 'del(.socket_errors_detail)' <<<"$j")"
    done
    # The run with the median req/s stands for the series (its p50/p99 are reported); errors are summed.
    j=$(jq -s 'sort_by(.rps) | .[(length - 1) / 2 | floor]' "$runs_json")
    result "${who}_manifest_rps_c$c" "$(jq -r .rps <<<"$j")"
    result "${who}_p50_ms_c$c" "$(jq -r .p50_ms <<<"$j")"
    result "${who}_p99_ms_c$c" "$(jq -r .p99_ms <<<"$j")"
    result "${who}_manifest_errors_c$c" "$(jq -s 'map(.non2xx + .socket_errors) | add' "$runs_json")"
    result "detail.${who} wrk c$c ($WRK_RUNS x ${WRK_S}s; req/s, p50, p99 per run)" \
      "$(jq -rs 'map("\(.rps | floor) req/s \(.p50_ms)/\(.p99_ms) ms" + (if .non2xx + .socket_errors > 0 then " (non-2xx \(.non2xx), socket errors: \(.socket_errors_detail))" else "" end)) | join("; ")' "$runs_json")"
  done
  stop_server
  rm -rf "$data"
  result "${who}_rss_mb" "$(peak_rss_mib "$who")"
  result "detail.${who} load average (1/5/15 min) at start; at end" "$load_start; $(cut -d' ' -f1-3 /proc/loadavg)"
  log "$who peak RSS $(peak_rss_mib "$who") MiB"
}

IDLE_WAIT_S=${BENCH_IDLE_WAIT_S:-120}
[[ $IDLE_WAIT_S =~ ^[0-9]+$ ]] || die "BENCH_IDLE_WAIT_S must be a number of seconds"
if [ "$ONLY" != shoal ]; then
  wait_for_idle "$IDLE_WAIT_S"
  result "detail.dist CPU idle before start (%)" "$(cpu_idle_pct)"
  bench_one dist
fi
if [ "$ONLY" != dist ]; then
  wait_for_idle "$IDLE_WAIT_S"
  result "detail.shoal CPU idle before start (%)" "$(cpu_idle_pct)"
  bench_one shoal
fi

lib report "$RESULTS"
