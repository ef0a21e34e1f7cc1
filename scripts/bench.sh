#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md:
#   1. the engine's Decide in process (ns/op, p50/p99) with a realistic policy;
#   2. the decision API over HTTP: `telguard serve` and `telguard bench` as two
#      processes on this machine, keep-alive clients, decisions/s and p50/p99.
# Everything talks to 127.0.0.1 only, and every loop is bounded in time.
# Usage: scripts/bench.sh [seconds-of-http-load (default 10)] [concurrency (default 8)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-8}

echo "== engine: Decide in process"
go test -run '^$' -bench 'BenchmarkDecide' -benchtime 200000x -count 1 ./internal/engine/ | grep -E '^(Benchmark|ok|PASS)'

go build -o bin/telguard ./cmd/telguard
for policy in examples/policy.yaml examples/bench/policy.yaml; do
	echo "== decision API over HTTP, one process (telguard bench), ${policy}, ${secs}s, concurrency ${conc}"
	bin/telguard bench --policy "$policy" --duration "${secs}s" --concurrency "$conc" 2>/dev/null
done

echo "== decision API over HTTP, two processes (serve + bench), examples/policy.yaml, ${secs}s, concurrency ${conc}"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
key="bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TELGUARD_API_KEY=$key bin/telguard serve --data "$work/data" --policy examples/policy.yaml \
	--listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1 100); do
	curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
bin/telguard bench --url "http://127.0.0.1:$port" --key "$key" --duration "${secs}s" --concurrency "$conc" 2>/dev/null
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^telguard_(decisions_log_shed_total|store_changes_written_total|store_changes_dropped_total)' || true
