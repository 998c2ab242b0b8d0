#!/usr/bin/env bash
# One benchmark client, run by bench/p2p/run.sh inside a node's network namespace (ip netns exec).
#
#   fetch.sh URL T0_MS MAX_TIME_S OUT HASH [LIMIT_BYTES_PER_S]
#
# Waits until the wall clock reaches T0_MS (epoch milliseconds, so every client starts together),
# GETs URL with curl (bounded by --max-time), hashes the body with openssl (HASH=1) or discards it
# (HASH=0), and writes one line to OUT: "start_ms end_ms curl_rc sha256hex|skip http_code bytes cpu_user cpu_sys
# ttfb_s" (cpu_*: CPU time of curl and openssl, as bash's `times` prints it; ttfb_s: seconds from curl's
# start to the first body byte, curl's time_starttransfer).
set -u
url=$1 t0=$2 maxt=$3 out=$4 hash=$5 limit=${6:-}

now_ms() {
  local t=$EPOCHREALTIME
  echo $((${t%.*} * 1000 + 10#${t#*.} / 1000))
}

# One sleep until the common start (at most 30 s; no polling, so 500 waiting clients cost nothing).
wait_ms=$((t0 - $(now_ms)))
if ((wait_ms > 0)); then
  ((wait_ms > 30000)) && wait_ms=30000
  sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
fi

args=(-sS --max-time "$maxt" -H 'Expect:' -w '%{stderr}%{http_code} %{size_download} %{time_starttransfer}\n')
[ -n "$limit" ] && args+=(--limit-rate "$limit")
start=$(now_ms)
if [ "$hash" = 1 ]; then
  curl "${args[@]}" -o - "$url" 2>"$out.err" | openssl dgst -sha256 -r -out "$out.sha"
  rc=${PIPESTATUS[0]}
  sha=$(cut -d' ' -f1 "$out.sha" 2>/dev/null)
  [ -n "$sha" ] || sha=none
else
  curl "${args[@]}" -o /dev/null "$url" 2>"$out.err"
  rc=$?
  sha=skip
fi
end=$(now_ms)
read -r code bytes ttfb < <(tail -n 1 "$out.err")
# CPU of this client's children (curl, openssl): the second line of `times`, e.g. "0m1.020s 0m0.310s".
times >"$out.times"
read -r cuser csys < <(tail -n 1 "$out.times")
echo "$start $end $rc $sha ${code:-000} ${bytes:-0} ${cuser:-0m0s} ${csys:-0m0s} ${ttfb:-}" >"$out.tmp" && mv "$out.tmp" "$out"
