#!/usr/bin/env bash
# Fast path, before/after: two builds of the harness side by side, interleaved rounds.
#
#   bench/ab-fast.sh BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS]
#
# For each build, serves hello world with `bench server --opponent hyper` (the same Router on
# bare hyper-util: what plain axum::serve does) and `--opponent intralb`, loads it with wrk
# (64 connections), and prints requests/s and the server's CPU time per request (from
# /proc/PID/stat), unpinned (server and wrk share both cores) and pinned (server on CPU 1, wrk
# on CPU 0). Needs wrk (apt-get install wrk). Build a baseline with, for example:
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

for pin in unpinned pinned; do
  declare -A rps=() cpu=()
  for round in $(seq "$rounds"); do
    for build in before after; do
      bin=$before; [ $build = after ] && bin=$after
      for opp in hyper intralb; do
        read -r r c < <(measure "$bin" $opp $pin)
        rps[$build.$opp]+="$r " cpu[$build.$opp]+="$c "
      done
    done
  done
  median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "== $pin (medians of $rounds rounds, ${secs}s each)"
  printf "%-8s %-8s %10s %14s %14s %16s\n" build server rps "vs hyper" "cpu us/req" "cpu vs hyper"
  for build in before after; do
    hr=$(echo "${rps[$build.hyper]}" | median); hc=$(echo "${cpu[$build.hyper]}" | median)
    for opp in hyper intralb; do
      r=$(echo "${rps[$build.$opp]}" | median); c=$(echo "${cpu[$build.$opp]}" | median)
      awk -v b=$build -v o=$opp -v r="$r" -v hr="$hr" -v c="$c" -v hc="$hc" \
        'BEGIN { printf "%-8s %-8s %10d %13.3fx %14.2f %15.3fx\n", b, o, r, r/hr, c, c/hc }'
    done
  done
  unset rps cpu
done
