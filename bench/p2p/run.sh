#!/usr/bin/env bash
# P2P distribution benchmark: one registry, one scheduler, one seed and N agents, each its own process
# (node bin/shoal.js ...), each in its own network namespace with tc tbf bandwidth caps.
#
#   npm run bench:p2p                  full run: 50 agents, 512 MiB blob, 20 Mbit/s per agent (22-26 minutes on 2 cores)
#   BENCH_QUICK=1 npm run bench:p2p    quick run: 10 agents, 64 MiB, 100 Mbit/s per agent (about 1 minute)
#
# Knobs (env): BENCH_AGENTS (50; quick 10), BENCH_BLOB_MIB (512; quick 64), BENCH_CAP_MBIT (agent upload and
#   download cap, 20; quick 100), BENCH_SEED_MBIT (seed upload, 4 x the agent cap), BENCH_REGISTRY_MBIT (registry
#   egress, 1000; quick 2000), BENCH_TIMEOUT_S (global limit, 3600), BENCH_CHURN_PCT (agents killed, 20),
#   BENCH_KILL_AT (fraction of the expected completion time at which they are killed, 0.4), BENCH_RACK_SIZE
#   (agents per rack label, 10; 0 = no labels), BENCH_MTU (MTU of every veth, 9000: jumbo frames, as in the data
#   centres such fleets run in (an AWS VPC's default is 9001); 1500 costs the agents ~40 % more CPU and the kernel
#   4x the softirq time here, for the same bytes: 12 agents x 64 MiB at 20 Mbit/s, 2 runs each: agents 32.4 / 35.7
#   CPU-s and softirq 3.4 / 3.7 % at 9000, 57.6 / 52.6 CPU-s and 10.1 / 9.7 % at 1500), BENCH_VERIFY (1: every
#   client hashes what it got; 0: none),
#   BENCH_SHAPING (auto | netns | in-process), BENCH_ADVERTISE_CAPS (1: in netns mode also pass the caps to the
#   roles as --upload-limit/--download-limit, so the scheduler sizes children by uploadBps; default 0: tc only),
#   BENCH_LOG_LEVEL (role log level, info), BENCH_KEEP_LOGS=DIR (copy every role's log and the per-phase data
#   there before cleanup), BENCH_AGENT_ARGS (extra `shoal agent` flags, e.g. "--buffer-reclaim 12MiB"),
#   BENCH_SEED_ARGS (extra `shoal seed` flags, e.g. "--uploads-per-child 0"),
#   BENCH_NODE_ARGS (extra node flags for every role, e.g. "--cpu-prof
#   --cpu-prof-dir=/tmp/prof"), BENCH_LIMIT_X (the P2P phase's time limit in Kumar-Ross bounds, 4.5; churn gets
#   0.5 more. It was 3, and on 2 cores the full fleet needs ~4: a limit that stops every client
#   measures nothing), BENCH_WORKDIR (where data goes; default $TMPDIR or /tmp; needs about
#   (agents + 5) x blob size free), BENCH_SKIP=churn,direct (leave phases out).
#
# CPU: this machine has 2 cores. At 20 Mbit/s and MTU 9000 an agent spends ~17-20 ms of CPU per MiB on its wire
# (received or forwarded; 977 CPU-s for ~49,500 MiB in the full run at 6d04d28; ~25 ms at MTU 1500), and the
# kernel's veth/bridge/tbf path takes ~7 % of the machine in softirq on top (16 % at MTU 1500), so 50 agents still
# saturate both cores at ~45-50 MB/s on the agents' downlinks (the caps allow 125). Slower caps do not help: at
# 6 Mbit/s an agent spends ~130 ms per MiB it receives (per-packet work, measured at MTU 1500), and 50 agents at
# 6 Mbit/s are CPU-bound too. 20 Mbit/s stays the default (the run takes 22-26 minutes here at MTU 9000); the
# table flags a CPU-bound run and prints CPU used by other processes on the machine. On a bigger machine the same
# defaults measure the protocol rather than the CPU.
#
# Time limits: p2p 4.5 x bound + 60 s, churn 5 x bound + 60 s (BENCH_LIMIT_X sets the 4.5), direct 2 x its client-server bound + 60 s (each at
# least 120 s, all within BENCH_TIMEOUT_S; a phase without time left is skipped and reported as n/a). Clients
# still running at a limit are stopped and count as failures.
#
# Phases (all in one run):
#   1. p2p:    every agent's client GETs the blob through its own agent at the same instant (cold agent caches,
#              cold seed: the first announce makes the seed fetch the blob from the registry).
#   2. churn:  agents restarted with wiped caches, a new blob pushed; BENCH_CHURN_PCT % of the agents SIGKILLed at
#              BENCH_KILL_AT x the p2p run's max completion time; every survivor must complete.
#   3. direct: every agent namespace GETs the p2p blob straight from the registry (same shaping).
# Reported: completion p50/p99/max, the Kumar-Ross bound max(F/u_seed, F/d_min, N*F/(u_seed + sum u_i)) and
#   max/bound, registry egress (its shoal_blob_bytes_sent_total delta) / blob size, scheduler CPU seconds
#   (/proc/<pid>/stat) and share of one core, agent peak RSS (VmRSS every 200 ms), machine CPU idle.
#
# Network safety (shared/DESIGN.md): a blackhole route for the test subnet (10.231.0.0/16) goes into the root
# namespace before anything else; every process, curl included, runs inside a namespace (ip netns exec); every
# loop is bounded in count and time; an EXIT trap stops every process by pid and deletes the namespaces (which
# deletes their veths), the route and the data. Without namespaces (not root, or `ip netns` fails) everything
# runs on 127.231.x.y with the roles' own caps (--upload-limit/--download-limit) and prints "shaping: in-process".
#
# Progress goes to stderr; the table and, as the very last line, one JSON object go to stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/p2p"
SHOAL="$ROOT/bin/shoal.js"
lib() { node "$HERE/lib.mjs" "$@"; }
log() { printf '[bench-p2p %s +%4ss] %s\n' "$(date +%T)" "$SECONDS" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------------- configuration
if [ "${BENCH_QUICK:-0}" = "1" ]; then
  MODE=quick
  N=${BENCH_AGENTS:-10}
  BLOB_MIB=${BENCH_BLOB_MIB:-64}
  CAP=${BENCH_CAP_MBIT:-100}
  REG_MBIT=${BENCH_REGISTRY_MBIT:-2000}
else
  MODE=full
  N=${BENCH_AGENTS:-50}
  BLOB_MIB=${BENCH_BLOB_MIB:-512}
  CAP=${BENCH_CAP_MBIT:-20}
  REG_MBIT=${BENCH_REGISTRY_MBIT:-1000}
fi
SEED_MBIT=${BENCH_SEED_MBIT:-$((4 * CAP))}
TIMEOUT_S=${BENCH_TIMEOUT_S:-3600}
CHURN_PCT=${BENCH_CHURN_PCT:-20}
KILL_AT=${BENCH_KILL_AT:-0.4}
LIMIT_X=${BENCH_LIMIT_X:-4.5}
RACK_SIZE=${BENCH_RACK_SIZE:-10}
MTU=${BENCH_MTU:-9000}
VERIFY=${BENCH_VERIFY:-1}
SHAPING_WANTED=${BENCH_SHAPING:-auto}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
SKIP=${BENCH_SKIP:-}
ADVERTISE_CAPS=${BENCH_ADVERTISE_CAPS:-0}
read -r -a NODE_ARGS <<<"${BENCH_NODE_ARGS:-}"
read -r -a AGENT_EXTRA_ARGS <<<"${BENCH_AGENT_ARGS:-}"
read -r -a SEED_EXTRA_ARGS <<<"${BENCH_SEED_ARGS:-}"
SUBNET=10.231.0.0/16
for v in N BLOB_MIB CAP SEED_MBIT REG_MBIT TIMEOUT_S; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $CHURN_PCT =~ ^[0-9]+$ && $RACK_SIZE =~ ^[0-9]+$ && $MTU =~ ^[0-9]+$ ]] || die "BENCH_CHURN_PCT, BENCH_RACK_SIZE and BENCH_MTU must be integers"
[[ $KILL_AT =~ ^0?\.[0-9]+$ ]] || die "BENCH_KILL_AT must be a fraction like 0.4"
[[ $LIMIT_X =~ ^([1-9]|1[0-9])(\.[0-9]+)?$ ]] || die "BENCH_LIMIT_X must be a number of bounds in 1..19.x, like 3 or 4.5 (got '$LIMIT_X')"
((N >= 2 && N <= 500)) || die "BENCH_AGENTS must be in 2..500"
((CHURN_PCT < 100)) || die "BENCH_CHURN_PCT must be < 100"
((TIMEOUT_S <= 7200)) || die "BENCH_TIMEOUT_S must be <= 7200"
case "$SHAPING_WANTED" in auto | netns | in-process) ;; *) die "BENCH_SHAPING must be auto, netns or in-process" ;; esac
BLOB_BYTES=$((BLOB_MIB * 1024 * 1024))

# ---------------------------------------------------------------------------------------------- state and cleanup
WORKBASE=${BENCH_WORKDIR:-${TMPDIR:-/tmp}}
# Leftovers of earlier runs that were killed before their cleanup finished (their owner pid is gone):
# work directories, and namespaces named sp2p<pid>-*. Only ones whose pid is dead are touched.
for d in "$WORKBASE"/shoal-p2p-bench.*; do
  [ -f "$d/owner.pid" ] || continue
  kill -0 "$(cat "$d/owner.pid")" 2>/dev/null && continue
  rm -rf "$d" && log "removed the leftover work directory $d"
done
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^sp2p[0-9]+-' || true); do
    owner=${ns#sp2p}
    owner=${owner%%-*}
    kill -0 "$owner" 2>/dev/null && continue
    ip netns del "$ns" 2>/dev/null && log "removed the leftover namespace $ns"
  done
fi
WORK=$(mktemp -d "$WORKBASE/shoal-p2p-bench.XXXXXX")
mkdir -p "$WORK/logs"
echo $$ >"$WORK/owner.pid"
PREFIX="sp2p$$"       # namespace names: unique per run
NETNS_MADE=()         # namespaces this run created
BLACKHOLE_ADDED=0     # whether this run added the root blackhole route
declare -A ROLE_PID   # role name -> pid (registry, scheduler, seed, agent-<i>)
CLIENT_PIDS=()        # benchmark clients in flight
SAMPLER_PID=''
WATCHDOG_PID=''
SHAPING=''
DEADLINE=$((SECONDS + TIMEOUT_S))

# Stops one process we started: TERM, up to 10 s, then KILL (its children first, by parent pid).
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# A client (bash fetch.sh) and its curl/openssl children, at once.
kill_client() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  pkill -KILL -P "$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? p name ns
  set +e
  trap - EXIT INT TERM
  [ -n "$WATCHDOG_PID" ] && { kill -TERM "$WATCHDOG_PID" 2>/dev/null; wait "$WATCHDOG_PID" 2>/dev/null; }
  for p in "${CLIENT_PIDS[@]}"; do kill_client "$p"; done
  [ -n "$SAMPLER_PID" ] && stop_pid "$SAMPLER_PID"
  # Agents first (TERM to all, then wait), then seed, scheduler, registry.
  for name in "${!ROLE_PID[@]}"; do [[ $name == agent-* ]] && kill -TERM "${ROLE_PID[$name]}" 2>/dev/null; done
  for name in "${!ROLE_PID[@]}"; do [[ $name == agent-* ]] && stop_pid "${ROLE_PID[$name]}"; done
  for name in seed scheduler registry; do [ -n "${ROLE_PID[$name]:-}" ] && stop_pid "${ROLE_PID[$name]}"; done
  for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"; done
  if [ "$BLACKHOLE_ADDED" = 1 ]; then ip route del blackhole "$SUBNET" 2>/dev/null || log "could not delete the blackhole route"; fi
  # The bulky data first (tens of GiB), in case this cleanup is itself cut short.
  rm -rf "$WORK/agents" "$WORK/seed" "$WORK/registry"
  if [ "$rc" != 0 ]; then
    log "failed (exit $rc); last lines of the role logs:"
    for f in registry scheduler seed agent-1; do
      [ -f "$WORK/logs/$f.log" ] && { echo "--- $f" >&2; tail -n 5 "$WORK/logs/$f.log" >&2; }
    done
  fi
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
    mkdir -p "$BENCH_KEEP_LOGS" && cp -r "$WORK/logs" "$BENCH_KEEP_LOGS/" && for d in "$WORK"/phase-*; do [ -d "$d" ] && cp -r "$d" "$BENCH_KEEP_LOGS/"; done
    cp "$WORK/config.env" "$BENCH_KEEP_LOGS/" 2>/dev/null
    log "logs kept in $BENCH_KEEP_LOGS"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
on_term() {
  if ((SECONDS >= TIMEOUT_S - 5)); then log "global time limit reached (BENCH_TIMEOUT_S=$TIMEOUT_S)"; else log "SIGTERM from outside after $SECONDS s"; fi
  exit 143
}
trap on_term TERM

# The global time limit: TERM to this script when it is reached. Short sleeps against the wall clock, so a
# `sleep` killed from outside (a shared machine) cannot end the run early.
(
  sp=''
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  end=$(($(date +%s) + TIMEOUT_S))
  while (($(date +%s) < end)); do
    sleep 5 &
    sp=$!
    wait "$sp"
  done
  kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!

remaining() { echo $((DEADLINE - SECONDS)); }
now_ms() {
  local t=$EPOCHREALTIME
  echo $((${t%.*} * 1000 + 10#${t#*.} / 1000))
}
cpu_idle_sample() { # prints "idle total" ticks
  local _c u n s i w q sq st
  read -r _c u n s i w q sq st _ </proc/stat
  echo "$((i + w)) $((u + n + s + i + w + q + sq + st))"
}

# ---------------------------------------------------------------------------------------------- preflight
command -v curl >/dev/null || die "curl is needed"
command -v openssl >/dev/null || die "openssl is needed"
BUILD_OK=1
if lib stale "$ROOT"; then
  log "dist/ is older than src/: building (npm run build)"
  if ! (cd "$ROOT" && npm run build >&2); then
    # tsc still emits on type errors; a tree that others are editing may be mid-change.
    [ -f "$ROOT/dist/cli/main.js" ] || die "build failed and there is no dist/"
    BUILD_OK=0
    log "WARNING: npm run build reported errors (see above); benchmarking what tsc emitted into dist/"
  fi
fi
GIT_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
SRC_DIRTY=$(git -C "$ROOT" status --porcelain -- src 2>/dev/null | wc -l)
avail=$(df --output=avail -B1 "$WORK" | tail -n 1)
need=$(((N + 5) * BLOB_BYTES))
((avail > need)) || die "need about $((need >> 30)) GiB free under $WORKBASE for $N agent caches (have $((avail >> 30)) GiB); set BENCH_WORKDIR"

netns_usable() {
  [ "$(id -u)" = 0 ] || return 1
  command -v ip >/dev/null && command -v tc >/dev/null || return 1
  local probe="${PREFIX}-probe"
  ip netns add "$probe" 2>/dev/null || return 1
  local ok=0
  if ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null &&
    tc -n "$probe" qdisc add dev p0 root tbf rate 10mbit burst 32kb latency 100ms 2>/dev/null; then ok=1; fi
  ip netns del "$probe" 2>/dev/null
  [ "$ok" = 1 ]
}
case "$SHAPING_WANTED" in
  netns) netns_usable || die "BENCH_SHAPING=netns but network namespaces are not usable here (root, ip, tc and tbf needed)"; SHAPING=netns ;;
  in-process) SHAPING=in-process ;;
  auto) if netns_usable; then SHAPING=netns; else SHAPING=in-process; fi ;;
esac
echo "shaping: $SHAPING"
log "mode $MODE: $N agents, blob $BLOB_MIB MiB, caps agent $CAP Mbit/s up+down, seed $SEED_MBIT Mbit/s up, registry $REG_MBIT Mbit/s; shaping $SHAPING; work dir $WORK"

# ---------------------------------------------------------------------------------------------- topology
HUB="${PREFIX}-hub"
if [ "$SHAPING" = netns ]; then
  NET=10.231
  # Network safety first: nothing for the test subnet may leave through the root namespace's default route.
  if ! ip route show type blackhole | grep -q "^blackhole $SUBNET"; then
    ip route add blackhole "$SUBNET"
    BLACKHOLE_ADDED=1
  fi
  ip route show type blackhole | grep -q "^blackhole $SUBNET" || die "blackhole route for $SUBNET missing"
else
  NET=127.231
fi
REG_IP=$NET.0.2
SCH_IP=$NET.0.3
SEED_IP=$NET.0.4
agent_ip() { echo "$NET.$((1 + ($1 - 1) / 250)).$((($1 - 1) % 250 + 1))"; }
REG_URL="http://$REG_IP:5000"
SCH_URL="http://$SCH_IP:4000"
SEED_URL="http://$SEED_IP:4001"
agent_url() { echo "http://$(agent_ip "$1"):65001"; }
ns_of() { [ "$SHAPING" = netns ] && echo "${PREFIX}-$1" || echo ''; }

# Runs a command in namespace $1 (or directly, in-process mode).
in_ns() {
  local ns=$1
  shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# The same in the background; $! is then the command's own pid (ip netns exec execs it, no fork).
spawn() {
  local ns=$1
  shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@" & else "$@" & fi
}

ns_add() {
  ip netns add "$1"
  NETNS_MADE+=("$1")
  ip -n "$1" link set lo up
}

# A node namespace joined to the hub bridge: veth $3 in the hub, eth0 in the node, address $2/16.
node_ns() {
  local ns=$1 ip=$2 hubdev=$3
  ns_add "$ns"
  ip -n "$HUB" link add "$hubdev" type veth peer name eth0 netns "$ns"
  ip -n "$HUB" link set "$hubdev" mtu "$MTU" master br0
  ip -n "$HUB" link set "$hubdev" up
  ip -n "$ns" link set eth0 mtu "$MTU"
  ip -n "$ns" addr add "$ip/16" dev eth0
  ip -n "$ns" link set eth0 up
}

# tbf on the egress of device $2 in namespace $1 at $3 Mbit/s (tbf only: no netem on this kernel).
shape() {
  local burst=64kb
  (($3 >= 500)) && burst=256kb
  tc -n "$1" qdisc replace dev "$2" root tbf rate "$3mbit" burst "$burst" latency 100ms
}

# Permanent neighbour (ARP) entries between all nodes. ARP requests and replies otherwise queue behind
# bulk data in the drop-tail tbf queues and get lost: a connect to a peer whose entry had expired then
# failed with EHOSTUNREACH or timed out, and each such failure is a bad-peer report.
static_neighbours() {
  local -a nss=("$(ns_of registry)" "$(ns_of scheduler)" "$(ns_of seed)") ips=("$REG_IP" "$SCH_IP" "$SEED_IP") macs=()
  local i j batch="$WORK/neigh.batch"
  for ((i = 1; i <= N; i++)); do
    nss+=("$(ns_of "a$i")")
    ips+=("$(agent_ip "$i")")
  done
  for ((i = 0; i < ${#nss[@]}; i++)); do
    macs+=("$(ip -n "${nss[$i]}" -o link show eth0 | awk '{ for (k = 1; k < NF; k++) if ($k == "link/ether") print $(k + 1) }')")
  done
  for ((i = 0; i < ${#nss[@]}; i++)); do
    : >"$batch"
    for ((j = 0; j < ${#nss[@]}; j++)); do
      ((i == j)) || echo "neigh replace ${ips[$j]} lladdr ${macs[$j]} dev eth0 nud permanent" >>"$batch"
    done
    ip -n "${nss[$i]}" -batch "$batch"
  done
  rm -f "$batch"
}

if [ "$SHAPING" = netns ]; then
  log "creating namespaces: hub + registry, scheduler, seed + $N agents on $SUBNET"
  ns_add "$HUB"
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" link set br0 up
  node_ns "$(ns_of registry)" "$REG_IP" vreg
  node_ns "$(ns_of scheduler)" "$SCH_IP" vsch
  node_ns "$(ns_of seed)" "$SEED_IP" vseed
  shape "$(ns_of registry)" eth0 "$REG_MBIT"
  shape "$(ns_of seed)" eth0 "$SEED_MBIT"
  for ((i = 1; i <= N; i++)); do
    node_ns "$(ns_of "a$i")" "$(agent_ip "$i")" "va$i"
    shape "$(ns_of "a$i")" eth0 "$CAP"  # upload: the node's egress
    shape "$HUB" "va$i" "$CAP"          # download: the hub side's egress = the node's ingress
    ((SECONDS < DEADLINE)) || die "global time limit reached while building the topology"
  done
  static_neighbours
  log "topology ready: ${#NETNS_MADE[@]} namespaces, permanent neighbour entries"
fi

# ---------------------------------------------------------------------------------------------- processes
start_role() { # name ns -- args...
  local name=$1 ns=$2
  shift 2
  # --no-concurrent-recompilation: see bin/shoal.js (a V8 deadlock that hung one agent of 50).
  spawn "$ns" node --no-concurrent-recompilation "${NODE_ARGS[@]}" "$SHOAL" "$@" --log-level "$LOG_LEVEL" >"$WORK/logs/$name.log" 2>&1
  ROLE_PID[$name]=$!
}

# Waits (bounded) until every named role logged "listening".
wait_listening() {
  local t_end=$((SECONDS + 180)) name pending
  while :; do
    pending=0
    for name in "$@"; do
      if ! grep -q '"msg":"listening"' "$WORK/logs/$name.log" 2>/dev/null; then
        kill -0 "${ROLE_PID[$name]}" 2>/dev/null || {
          tail -n 20 "$WORK/logs/$name.log" >&2
          die "$name exited during start-up"
        }
        pending=$((pending + 1))
      fi
    done
    ((pending == 0)) && return 0
    ((SECONDS < t_end)) || die "$pending roles not listening after 180 s"
    sleep 0.3
  done
}

agent_args() {
  local i=$1
  local a=(agent --listen "$(agent_ip "$i"):65001" --scheduler "$SCH_URL" --registry "$REG_URL" --data "$WORK/agents/$i")
  ((RACK_SIZE > 0)) && a+=(--labels "dc=dc1,zone=z1,rack=r$(((i - 1) / RACK_SIZE + 1))")
  if [ "$SHAPING" = in-process ] || [ "$ADVERTISE_CAPS" = 1 ]; then a+=(--upload-limit "${CAP}Mbit" --download-limit "${CAP}Mbit"); fi
  a+=("${AGENT_EXTRA_ARGS[@]}")
  echo "${a[@]}"
}

start_agents() {
  local i names=()
  for ((i = 1; i <= N; i++)); do
    # shellcheck disable=SC2046
    start_role "agent-$i" "$(ns_of "a$i")" $(agent_args "$i")
    names+=("agent-$i")
  done
  wait_listening "${names[@]}"
}

stop_agents() {
  local i
  for ((i = 1; i <= N; i++)); do kill -TERM "${ROLE_PID[agent-$i]}" 2>/dev/null || true; done
  for ((i = 1; i <= N; i++)); do stop_pid "${ROLE_PID[agent-$i]}"; done
}

log "starting registry, scheduler, seed"
mkdir -p "$WORK/registry" "$WORK/seed" "$WORK/agents"
start_role registry "$(ns_of registry)" serve --listen "$REG_IP:5000" --data "$WORK/registry"
start_role scheduler "$(ns_of scheduler)" scheduler --listen "$SCH_IP:4000" --registry "$REG_URL"
seed_args=(seed --listen "$SEED_IP:4001" --scheduler "$SCH_URL" --registry "$REG_URL" --data "$WORK/seed" --labels dc=dc1,zone=z1)
if [ "$SHAPING" = in-process ] || [ "$ADVERTISE_CAPS" = 1 ]; then seed_args+=(--upload-limit "${SEED_MBIT}Mbit"); fi
[ "$SHAPING" = in-process ] && seed_args+=(--back-to-source-limit "${REG_MBIT}Mbit")
seed_args+=("${SEED_EXTRA_ARGS[@]}")
wait_listening registry scheduler
start_role seed "$(ns_of seed)" "${seed_args[@]}"
wait_listening seed
log "starting $N agents"
start_agents
log "all roles listening"

# ---------------------------------------------------------------------------------------------- blobs
REPO=bench/p2p
# Writes a random blob of BLOB_BYTES, pushes it with one monolithic POST from the registry's namespace; prints its digest.
push_blob() {
  local file="$WORK/blob.bin" digest code
  head -c "$BLOB_BYTES" /dev/urandom >"$file"
  digest="sha256:$(openssl dgst -sha256 -r "$file" | cut -d' ' -f1)"
  code=$(in_ns "$(ns_of registry)" curl -sS --max-time 300 -o /dev/null -w '%{http_code}' -X POST --data-binary "@$file" \
    -H 'Expect:' -H 'Content-Type: application/octet-stream' "$REG_URL/v2/$REPO/blobs/uploads/?digest=$digest")
  rm -f "$file"
  [ "$code" = 201 ] || die "blob push answered $code"
  echo "$digest"
}
log "pushing a $BLOB_MIB MiB random blob"
DIGEST_P2P=$(push_blob)
log "pushed $DIGEST_P2P"

cat >"$WORK/config.env" <<EOF
agents=$N
blob_bytes=$BLOB_BYTES
cap_mbit=$CAP
seed_mbit=$SEED_MBIT
registry_mbit=$REG_MBIT
shaping=$SHAPING
mtu=$([ "$SHAPING" = netns ] && echo "$MTU")
mode=$MODE
digest_p2p=$DIGEST_P2P
advertise_caps=$ADVERTISE_CAPS
git_head=$GIT_HEAD
src_dirty_files=$SRC_DIRTY
build_ok=$BUILD_OK
cpus=$(nproc)
EOF

BOUND_S=$(awk -v F="$BLOB_BYTES" -v n="$N" -v c="$CAP" -v s="$SEED_MBIT" 'BEGIN {
  u = c * 1e6 / 8; us = s * 1e6 / 8; b = F / us; if (F / u > b) b = F / u; sw = n * F / (us + n * u); if (sw > b) b = sw; printf "%.1f", b }')
DIRECT_BOUND_S=$(awk -v F="$BLOB_BYTES" -v n="$N" -v c="$CAP" -v r="$REG_MBIT" 'BEGIN {
  u = c * 1e6 / 8; ur = r * 1e6 / 8; b = n * F / ur; if (F / u > b) b = F / u; printf "%.1f", b }')
log "Kumar-Ross bound ${BOUND_S} s; client-server bound ${DIRECT_BOUND_S} s"

# ---------------------------------------------------------------------------------------------- phases
scrape() { # ns url file
  in_ns "$1" curl -sS --max-time 10 -o "$3" "$2" 2>/dev/null || echo "# scrape of $2 failed" >"$3"
}

# run_phase NAME URL_FOR_AGENT_FN DIGEST LIMIT_S [KILL_AT_S KILL_LIST...]
run_phase() {
  local name=$1 urlfn=$2 digest=$3 limit_s=$4 kill_at_s=${5:-} i
  shift 5 2>/dev/null || shift $#
  local kill_list=("$@")
  local ph="$WORK/phase-$name"
  mkdir -p "$ph/clients" "$ph/status"
  # Leave time for what follows (the later phases' minimum and the report).
  local reserve=$((60 + PHASE_RESERVE))
  ((limit_s < $(remaining) - reserve)) || limit_s=$(($(remaining) - reserve))
  ((limit_s >= 30)) || limit_s=30
  scrape "$(ns_of registry)" "$REG_URL/metrics" "$ph/registry-before.prom"
  scrape "$(ns_of scheduler)" "$SCH_URL/metrics" "$ph/scheduler-before.prom"
  local reg_lines
  reg_lines=$(wc -l <"$WORK/logs/registry.log")
  local seed_lines
  seed_lines=$(wc -l <"$WORK/logs/seed.log")
  {
    echo "registry ${ROLE_PID[registry]}"
    echo "scheduler ${ROLE_PID[scheduler]}"
    echo "seed ${ROLE_PID[seed]}"
    for ((i = 1; i <= N; i++)); do echo "agent-$i ${ROLE_PID[agent-$i]:-}"; done
  } >"$ph/pids"
  spawn "$(ns_of hub)" node "$HERE/lib.mjs" sample "$ph/sampler.json" "$ph/stop" "$ph/pids" "$((limit_s + 30))" "$$"
  SAMPLER_PID=$!
  local t0
  t0=$(($(now_ms) + 2000))
  CLIENT_PIDS=()
  local limit_rate=''
  [ "$SHAPING" = in-process ] && [ "$name" = direct ] && limit_rate=$((CAP * 1000000 / 8))
  for ((i = 1; i <= N; i++)); do
    spawn "$(ns_of "a$i")" bash "$HERE/fetch.sh" "$($urlfn "$i")/v2/$REPO/blobs/$digest" "$t0" "$limit_s" "$ph/clients/$i" "$VERIFY" $limit_rate
    CLIENT_PIDS+=($!)
  done
  log "phase $name: $N clients start at once (limit ${limit_s} s)"
  local killed=() done_n alive last_log=$SECONDS stat0 stat1 t_end=$((SECONDS + limit_s + 5)) kill_ms=''
  [ -n "$kill_at_s" ] && kill_ms=$((t0 + $(awk -v k="$kill_at_s" 'BEGIN { printf "%d", k * 1000 }')))
  stat0=$(cpu_idle_sample)
  while :; do
    alive=0
    for i in "${CLIENT_PIDS[@]}"; do kill -0 "$i" 2>/dev/null && alive=$((alive + 1)); done
    ((alive == 0)) && break
    if [ -n "$kill_ms" ] && ((${#killed[@]} == 0)) && (($(now_ms) >= kill_ms)); then
      for i in "${kill_list[@]}"; do
        disown "${ROLE_PID[agent-$i]}" 2>/dev/null || true  # no "Killed" job notice
        kill -KILL "${ROLE_PID[agent-$i]}" 2>/dev/null || true
        killed+=("$i")
      done
      log "phase $name: SIGKILLed ${#killed[@]} agents at $(((($(now_ms) - t0)) / 1000)) s: ${killed[*]}"
    fi
    if ((SECONDS - last_log >= 10)); then
      done_n=$(find "$ph/clients" -maxdepth 1 -name '[0-9]*' ! -name '*.*' | wc -l)
      stat1=$(cpu_idle_sample)
      log "phase $name: $((($(now_ms) - t0) / 1000)) s, $done_n/$N clients finished, CPU idle $(echo "$stat0 $stat1" | awk '{ d = $4 - $2; printf "%.0f", (d > 0 ? 100 * ($3 - $1) / d : 0) }') % over the last 10 s"
      stat0=$stat1
      last_log=$SECONDS
    fi
    if ((SECONDS >= t_end)); then
      log "phase $name: time limit reached with $alive clients running; stopping them"
      for i in "${CLIENT_PIDS[@]}"; do kill_client "$i"; done
      break
    fi
    sleep 0.2
  done
  for i in "${CLIENT_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
  CLIENT_PIDS=()
  # Reap the killed agents so they are not stopped again later.
  for i in "${killed[@]}"; do wait "${ROLE_PID[agent-$i]}" 2>/dev/null || true; unset "ROLE_PID[agent-$i]"; done
  touch "$ph/stop"
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=''
  scrape "$(ns_of registry)" "$REG_URL/metrics" "$ph/registry-after.prom"
  scrape "$(ns_of scheduler)" "$SCH_URL/metrics" "$ph/scheduler-after.prom"
  if [ "$name" != direct ]; then
    for ((i = 1; i <= N; i++)); do
      [ -n "${ROLE_PID[agent-$i]:-}" ] || continue
      scrape "$(ns_of "a$i")" "$(agent_url "$i")/status" "$ph/status/$i.json"
      scrape "$(ns_of "a$i")" "$(agent_url "$i")/metrics" "$ph/status/$i.prom"
    done
  fi
  local gets seed_ms
  gets=$(tail -n +"$((reg_lines + 1))" "$WORK/logs/registry.log" | grep '"msg":"request"' | grep '"method":"GET"' | grep -c "/blobs/$digest\".*\"status\":20[06]" || true)
  seed_ms=$(tail -n +"$((seed_lines + 1))" "$WORK/logs/seed.log" | grep "$digest" | grep -o '"ms":[0-9]*' | head -n 1 | cut -d: -f2 || true)
  {
    echo "t0=$t0"
    echo "clients=$N"
    echo "killed=${killed[*]}"
    echo "kill_at_s=$kill_at_s"
    echo "registry_blob_gets=$gets"
    echo "seed_fetch_ms=$seed_ms"
  } >"$ph/meta.env"
  local ok max
  ok=$(cat "$ph"/clients/[0-9]* 2>/dev/null | awk -v F="$BLOB_BYTES" '$3 == 0 && $6 == F' | wc -l || true)
  max=$(cat "$ph"/clients/[0-9]* 2>/dev/null | awk -v t="$t0" -v F="$BLOB_BYTES" '$3 == 0 && $6 == F { d = ($2 - t) / 1000; if (d > m) m = d } END { printf "%.1f", m }' || true)
  log "phase $name done: $ok/$N clients got all bytes (${#killed[@]} agents killed), slowest ${max} s, registry blob GETs $gets"
  lib series "$ph/sampler.json" >&2 || true
  if [ "$name" != direct ]; then
    local warns
    warns=$(lib logsummary "$WORK"/logs/agent-*.log "$WORK/logs/seed.log" "$WORK/logs/scheduler.log")
    [ -n "$warns" ] && { log "warn/error log lines so far (all roles, cumulative):"; echo "$warns" >&2; }
  fi
  PHASE_MAX=$max
}

skip() { [[ ",$SKIP," == *",$1,"* ]]; }
# limit_for FACTOR BOUND: a phase's time limit, FACTOR x BOUND + 60 s, at least 120 s.
limit_for() { awk -v f="$1" -v b="$2" 'BEGIN { l = f * b + 60; printf "%d", (l < 120 ? 120 : l) }'; }
P2P_LIMIT=$(limit_for "$LIMIT_X" "$BOUND_S")
CHURN_LIMIT=$(limit_for "$(awk -v x="$LIMIT_X" 'BEGIN { print x + 0.5 }')" "$BOUND_S")
DIRECT_LIMIT=$(limit_for 2 "$DIRECT_BOUND_S")
skip churn && CHURN_LIMIT=0
skip direct && DIRECT_LIMIT=0
MIN_PHASE_S=120   # a later phase gets at least this much; one that cannot is skipped (reported as n/a)

# 1. P2P
PHASE_MAX=0
PHASE_RESERVE=$(((CHURN_LIMIT > 0 ? MIN_PHASE_S + 60 : 0) + (DIRECT_LIMIT > 0 ? MIN_PHASE_S : 0)))
run_phase p2p agent_url "$DIGEST_P2P" "$P2P_LIMIT" ''
P2P_MAX=$PHASE_MAX
P2P_OK=$(cat "$WORK/phase-p2p/clients/"[0-9]* 2>/dev/null | awk -v F="$BLOB_BYTES" '$3 == 0 && $6 == F' | wc -l || true)

# 2. Churn: fresh caches, a new blob, 20 % of the agents SIGKILLed at 40 % of the expected time.
# It needs a restart (~60 s), its own minimum, the direct phase's minimum and 60 s for the report.
if ((CHURN_LIMIT > 0)) && (($(remaining) < 60 + MIN_PHASE_S + (DIRECT_LIMIT > 0 ? MIN_PHASE_S : 0) + 60)); then
  log "churn: skipped, not enough time left ($(remaining) s; BENCH_TIMEOUT_S=$TIMEOUT_S)"
  CHURN_LIMIT=0
fi
if ((CHURN_LIMIT > 0)); then
  log "churn: restarting agents with wiped caches"
  stop_agents
  rm -rf "$WORK/agents"
  mkdir -p "$WORK/agents"
  for ((i = 1; i <= N; i++)); do mv "$WORK/logs/agent-$i.log" "$WORK/logs/agent-$i.p2p.log"; done
  start_agents
  DIGEST_CHURN=$(push_blob)
  echo "digest_churn=$DIGEST_CHURN" >>"$WORK/config.env"
  log "pushed $DIGEST_CHURN"
  K=$(((N * CHURN_PCT + 50) / 100))
  mapfile -t KILL_LIST < <(shuf -i 1-"$N" -n "$K" --random-source=<(yes 2>/dev/null | head -c 65536) | sort -n)
  # Expected completion: the p2p run's max when every agent completed there, else the bound.
  expected=$BOUND_S
  ((P2P_OK == N)) && expected=$P2P_MAX
  KILL_AT_S=$(awk -v e="$expected" -v f="$KILL_AT" 'BEGIN { printf "%.1f", e * f }')
  log "churn: will SIGKILL $K agents at ${KILL_AT_S} s (${KILL_AT} x ${expected} s)"
  PHASE_RESERVE=$((DIRECT_LIMIT > 0 ? MIN_PHASE_S : 0))
  run_phase churn agent_url "$DIGEST_CHURN" "$CHURN_LIMIT" "$KILL_AT_S" "${KILL_LIST[@]}"
  rm -rf "$WORK/agents"/*
fi

# 3. Direct from the registry, same namespaces and shaping.
if ((DIRECT_LIMIT > 0)) && (($(remaining) < MIN_PHASE_S + 60)); then
  log "direct: skipped, not enough time left ($(remaining) s; BENCH_TIMEOUT_S=$TIMEOUT_S)"
  DIRECT_LIMIT=0
fi
if ((DIRECT_LIMIT > 0)); then
  reg_url_for() { echo "$REG_URL"; }
  PHASE_RESERVE=0
  run_phase direct reg_url_for "$DIGEST_P2P" "$DIRECT_LIMIT" ''
fi

# ---------------------------------------------------------------------------------------------- report
lib report "$WORK"
