#!/usr/bin/env bash
# Reproduces section 6 of docs/BENCHMARKS.md, the webhook ingress, on this
# machine, everything on 127.0.0.1, all in one process (see
# `telguard bench-webhooks --help`):
#   1. a bare net/http handler (read the body, 202) under the load generator;
#   2. the ingress (verify, dedupe, durable enqueue in embedded JetStream,
#      202) under the same generator, workers stopped;
#   3. the workers and delivery emptying that backlog to a local receiver;
#   4. ingress, workers and delivery together, then the drain.
# Then the same again with the data directory on tmpfs, to show what the
# filesystem costs. Every phase has a duration and every drain a timeout,
# so the script ends by itself (about 2 to 3 minutes).
# Usage: scripts/bench-webhooks.sh [seconds-per-phase (default 5)] [concurrency (default 16)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conc=${2:-16}

go build -o bin/telguard ./cmd/telguard
echo "== webhook ingress, data directory in ${TMPDIR:-/tmp}"
bin/telguard bench-webhooks --duration "${secs}s" --concurrency "$conc"
if [ -d /dev/shm ]; then
	echo
	echo "== webhook ingress, data directory on tmpfs (/dev/shm)"
	TMPDIR=/dev/shm bin/telguard bench-webhooks --duration "${secs}s" --concurrency "$conc"
fi
