#!/usr/bin/env bash
# Every measurement in the latest table of bench/RESULTS.md, in the order it was taken. Run on a quiet machine,
# with the files written as RESULTS.md ("Models") describes; results land in $OUT (default /tmp/results-run).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/results-run}; mkdir -p $out
uptime > $out/uptime-start.txt
for m in qwen2-1.5b-Q4_K_M qwen2-1.5b-Q8_0 llama-3.2-1b-Q4_K_M qwen2-1.5b-F16; do
  ROUNDS=2 REPS=3 bench/compare-llamacpp.sh /tmp/sy/$m.gguf 2 > $out/cmp-$m.txt 2> $out/cmp-$m.err
  uptime >> $out/uptime-$m.txt
done
for m in qwen2-1.5b-Q4_K_M qwen2-1.5b-Q8_0; do
  ./sputnik bench -m /tmp/sy/$m.gguf -p 128 -n 64 -r 3 -t 2 --json > $out/json-$m.txt 2>&1
done
dotnet run -c Release --project bench/Sputnik.Bench -- batch /tmp/sy/qwen2-1.5b-Q4_K_M.gguf 2 32 1 8 > $out/batch-1.5b.txt 2>&1
PP=64 TG=32 ROUNDS=1 REPS=2 bench/compare-llamacpp.sh /tmp/dsv2lite-q4km.gguf 2 > $out/cmp-dsv2lite.txt 2> $out/cmp-dsv2lite.err
uptime > $out/uptime-end.txt
