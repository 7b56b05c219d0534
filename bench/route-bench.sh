#!/usr/bin/env bash
# Replays the routing tests' workload (tests/Sputnik.Tests/Server/Routing/RouterReplayTests.cs: 200 conversations of
# 4 turns, 60 users online who think between turns, Zipf-popular system prompts; replicas whose snapshot RAM holds what
# a 7B model's would) on 1 replica of the bundled model and on 3 behind `sputnik route` (prefix, round-robin,
# least-loaded), for each seed on fresh replicas, all in one process on this machine, and prints the replicas' prefix
# hit rate, p50/p95 time to first token and throughput as a Markdown table (also written to $SPUTNIK_ROUTE_BENCH_OUT).
# On a 2-core machine the replicas share the cores: it checks routing, it does not measure scaling.
#   bench/route-bench.sh                       (seeds 1,2,3)
#   SPUTNIK_ROUTE_BENCH_SEEDS=4,5 SPUTNIK_ROUTE_BENCH_CACHE_MB=512 SPUTNIK_ROUTE_BENCH_SYSTEM_PROMPTS=0 bench/route-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SPUTNIK_ROUTE_BENCH=1
export SPUTNIK_ROUTE_BENCH_OUT="${SPUTNIK_ROUTE_BENCH_OUT:-/tmp/sputnik-route-bench.md}"
dotnet build tests/Sputnik.Tests -c Release >/dev/null
dotnet test --project tests/Sputnik.Tests -c Release --no-build -- --filter-class "Sputnik.Tests.Server.Routing.RouteBench"
cat "$SPUTNIK_ROUTE_BENCH_OUT"
