#!/usr/bin/env bash
# Reproduces section 6 of docs/BENCHMARKS.md, the webhook ingress, on this
# machine, everything on 127.0.0.1, all in one process (see
# `telguard bench-webhooks --help`):
#   1. a bare net/http handler (read the body, 202) under the load generator;
#   2. the ingress (verify, dedupe, durable enqueue in embedded JetStream,
#      202) under the same generator, workers stopped;
#   3. the workers and delivery (the group-committed outbox log, signed
#      POSTs) emptying that backlog to a local receiver;
#   4. ingress, workers and delivery together, then the drain.
# Then the same again with the data directory on tmpfs, to show what the
# filesystem costs; all of it `rounds` times, since a shared machine moves
# these figures a lot between runs. Every phase has a duration and every
# drain a timeout, so the script ends by itself (about 1 to 2 minutes a
# round).
# Run it alone: under flock /tmp/telguard-bench.lock when others share the box.
# Usage: scripts/bench-webhooks.sh [seconds-per-phase (default 5)] [concurrency (default 16)] [rounds (default 1)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conc=${2:-16}
rounds=${3:-1}

go build -o bin/telguard ./cmd/telguard
for round in $(seq "$rounds"); do
	echo "== round $round: webhook ingress, data directory in ${TMPDIR:-/tmp}"
	bin/telguard bench-webhooks --duration "${secs}s" --concurrency "$conc"
	if [ -d /dev/shm ]; then
		echo
		echo "== round $round: webhook ingress, data directory on tmpfs (/dev/shm)"
		TMPDIR=/dev/shm bin/telguard bench-webhooks --duration "${secs}s" --concurrency "$conc"
	fi
	echo
done
