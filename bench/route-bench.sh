#!/usr/bin/env bash
# Replays multi-turn chats (tests/Sputnik.Tests/Server/Routing/ConversationReplay.cs: 4 turns, 8 at a time, 8 tokens
# per answer) on 1 replica of the bundled model and on 3 behind `sputnik route` (prefix, round-robin), all
# in one process on this machine, and prints p50/p95 time to first token, throughput and the replicas' prefix hit
# rate as a Markdown table (also written to $SPUTNIK_ROUTE_BENCH_OUT when set). On a 2-core machine the replicas
# share the cores: it checks routing, it does not measure scaling.
#   bench/route-bench.sh [CONVERSATIONS]      (default 200)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SPUTNIK_ROUTE_BENCH=1 SPUTNIK_ROUTE_BENCH_CONVERSATIONS="${1:-200}"
export SPUTNIK_ROUTE_BENCH_OUT="${SPUTNIK_ROUTE_BENCH_OUT:-/tmp/sputnik-route-bench.md}"
dotnet build tests/Sputnik.Tests -c Release >/dev/null
dotnet test --project tests/Sputnik.Tests -c Release --no-build -- --filter-class "Sputnik.Tests.Server.Routing.RouteBench"
cat "$SPUTNIK_ROUTE_BENCH_OUT"
