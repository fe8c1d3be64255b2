#!/usr/bin/env bash
# Fast path, before/after: two builds of the harness side by side, interleaved rounds.
#
#   bench/ab-fast.sh BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS]
#
# Serves hello world with plain `axum::serve` (the same Router, from AFTER_BIN) and with each
# build's `--opponent intralb`, loads each with wrk (64 connections), and prints requests/s and
# the server's CPU time per request (from /proc/PID/stat) as ratios to plain axum, unpinned
# (server and wrk share both cores) and pinned (server on CPU 1, wrk on CPU 0); SETUPS=unpinned
# runs one set-up only. Two controls run in the same rounds (CONTROLS=0 leaves them out): the
# `lease` floor (plain axum with only a per-worker lease, from AFTER_BIN) and plain axum a second
# time, whose ratio to the first is the A/A noise. Needs wrk (apt-get install wrk).
#
# The ratios are paired: each build against the plain axum run of the same round; the tables show
# their median and range over the rounds. On a shared 2-core machine single rounds spread by
# ±10 %, so take 10 rounds or more for a difference of a few percent, and run it once with the
# same binary twice (an A/A run): how far the two columns differ then is the noise. Build a
# baseline with, for example:
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p intralb-bench)
set -euo pipefail
before=$1 after=$2 rounds=${3:-10} secs=${4:-4}
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
    'BEGIN { printf "%.0f %.3f\n", r / s, c / tick * 1e6 / r }'
}

# Interleaved: plain axum::serve (from AFTER_BIN: it does not depend on intralb), each build's
# intralb, and the controls.
servers="axum:$after:axum before:$before:intralb after:$after:intralb"
if [ "${CONTROLS:-1}" != 0 ]; then servers="$servers lease:$after:lease axum2:$after:axum"; fi
for pin in ${SETUPS:-unpinned pinned}; do
  raw=$(mktemp)
  for round in $(seq "$rounds"); do
    for server in $servers; do
      IFS=: read -r name bin opp <<<"$server"
      read -r r c < <(measure "$bin" "$opp" $pin)
      echo "$name $round $r $c" >>"$raw"
    done
  done
  echo "== $pin ($rounds rounds of ${secs}s; ratios paired by round: median (min-max))"
  awk '
    { rps[$1, $2] = $3; cpu[$1, $2] = $4; if ($2 > n) n = $2 }
    function med(a, k,   i, j, t) {
      for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function show(name, label,   i, r, c, us, mr, mc, mu) {
      for (i = 1; i <= n; i++) { r[i] = rps[name, i] / rps["axum", i]; c[i] = cpu[name, i] / cpu["axum", i]; us[i] = cpu[name, i] }
      mr = med(r, n); mc = med(c, n); mu = med(us, n) # sorts each array: [1] is the least, [n] the most
      printf "%-16s %7.3fx (%.3f-%.3f) %9.3fx (%.3f-%.3f) %10.2f\n", label, mr, r[1], r[n], mc, c[1], c[n], mu
    }
    END {
      printf "%-16s %23s %23s %10s\n", "server", "rps vs axum", "cpu/req vs axum", "cpu us/req"
      show("axum", "axum"); show("before", "intralb before"); show("after", "intralb after")
      if (("lease", 1) in rps) { show("lease", "lease (floor)"); show("axum2", "axum again (A/A)") }
    }' "$raw"
  rm -f "$raw"
done
