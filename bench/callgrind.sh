#!/usr/bin/env bash
# User-space instructions per request of one harness server, under callgrind: deterministic,
# unlike wall-clock rates on a shared 2-core machine.
#
#   bench/callgrind.sh BIN OPPONENT [OUT]     e.g. bench/callgrind.sh target/release/bench intralb
#
# Starts `BIN server --opponent OPPONENT` under valgrind, warms it up with wrk for 2 s, zeroes
# the counters, loads it for 5 s (wrk, 16 connections), dumps, and prints the instructions per
# request. `callgrind_annotate --inclusive=yes OUT.PID.1` then shows where they go. Needs
# valgrind and wrk (apt-get install valgrind wrk).
#
# Compare opponents within one build. To compare two builds, build both with
# CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1: with the default profile, how the compiler splits the
# code alone moves the count by a few hundred instructions between builds. Give each checkout its
# own CARGO_TARGET_DIR: cargo hashes workspace members by their path inside the workspace, so a
# second checkout built into the same target directory can find the first one's binary fresh and
# not rebuild it (both "builds" are then the same binary).
set -euo pipefail
bin=$1 opp=$2 out=${3:-/tmp/callgrind-$2} port=${PORT:-18183}
valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$bin" server --opponent "$opp" --port "$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
wrk -t1 -c16 -d2s "http://127.0.0.1:$port/" >/dev/null
callgrind_control -z "$pid" >/dev/null
requests=$(wrk -t1 -c16 -d5s "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
callgrind_control -d "$pid" >/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true
total=$(callgrind_annotate "$out.$pid.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$opp: $requests requests, $((total / requests)) instructions per request ($out.$pid.1)"
