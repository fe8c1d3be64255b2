#!/usr/bin/env bash
# Fast path, before/after: two builds of the harness side by side, interleaved rounds.
#
#   bench/ab-fast.sh BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS]
#
# Serves hello world with plain `axum::serve` (the same Router, from AFTER_BIN) and with each
# build's `--opponent intralb`, loads each with wrk (64 connections), and prints requests/s and
# the server's CPU time per request (from /proc/PID/stat) as ratios to plain axum, unpinned
# (server and wrk share both cores) and pinned (server on CPU 1, wrk on CPU 0). Needs wrk (apt-get install wrk). Build a baseline with, for example:
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p intralb-bench)
set -euo pipefail
before=$1 after=$2 rounds=${3:-3} secs=${4:-8}
port=18181
tick=$(getconf CLK_TCK)

measure() { # bin opponent pin -> "rps cpu_us_per_req"
  local bin=$1 opp=$2 pin=$3 srv_cpu="" wrk_cpu=""
  if [ "$pin" = pinned ]; then srv_cpu="taskset -c 1"; wrk_cpu="taskset -c 0"; fi
  $srv_cpu "$bin" server --opponent "$opp" --port $port >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.02; done
  $wrk_cpu wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$($wrk_cpu wrk -t1 -c64 -d${secs}s "http://127.0.0.1:$port/")
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local reqs; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v r="$reqs" -v s="$secs" -v c=$((t1 - t0)) -v tick="$tick" \
    'BEGIN { printf "%.0f %.2f\n", r / s, c / tick * 1e6 / r }'
}

# Three servers, interleaved: plain axum::serve (from AFTER_BIN: it does not depend on intralb),
# and each build's intralb.
servers="axum:$after:axum before:$before:intralb after:$after:intralb"
for pin in unpinned pinned; do
  declare -A rps=() cpu=()
  for round in $(seq "$rounds"); do
    for server in $servers; do
      IFS=: read -r name bin opp <<<"$server"
      read -r r c < <(measure "$bin" "$opp" $pin)
      rps[$name]+="$r " cpu[$name]+="$c "
    done
  done
  median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "== $pin (medians of $rounds rounds, ${secs}s each)"
  printf "%-16s %10s %14s %12s %14s\n" server rps "rps vs axum" "cpu us/req" "cpu vs axum"
  ar=$(echo "${rps[axum]}" | median); ac=$(echo "${cpu[axum]}" | median)
  for name in axum before after; do
    r=$(echo "${rps[$name]}" | median); c=$(echo "${cpu[$name]}" | median)
    label=$name; [ $name != axum ] && label="intralb $name"
    awk -v n="$label" -v r="$r" -v ar="$ar" -v c="$c" -v ac="$ac" \
      'BEGIN { printf "%-16s %10d %13.3fx %12.2f %13.3fx\n", n, r, r/ar, c, c/ac }'
  done
  unset rps cpu
done
