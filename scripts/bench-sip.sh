#!/usr/bin/env bash
# Reproduces section 4 of docs/BENCHMARKS.md, the SIP edge, with SIPp
# (Debian's sip-tester) on this machine, everything on 127.0.0.0/8:
#   1. calls/s forwarded with zero failures, SIPp straight to the PBX vs
#      through the guard, and the latency the guard adds (p50/p99), at
#      200, 500, 1000 and 1500 calls/s;
#   2. a banned source flooding the guard while SIPp calls through it:
#      packets/s dropped, the calls' success rate, the guard's peak RSS —
#      once at the flooder's full speed, once at 120,000 packets/s;
#   3. a flood soak: the full-speed flood for soak-seconds on a fresh guard,
#      with its RSS and call-state tables sampled every 30 s, to show where
#      memory levels off (transactions are kept 4 minutes, so the soak
#      should run past that).
# Every SIPp run has -m and -timeout and the flood has a duration, so the
# script ends by itself (about 13 minutes with the defaults).
# Run it alone: under flock /tmp/telguard-bench.lock when others share the box.
# Usage: scripts/bench-sip.sh [flood-seconds (default 60)] [seconds-per-rate (default 10)] [soak-seconds (default 300)]
set -euo pipefail
cd "$(dirname "$0")/.."
flood=${1:-60}
step=${2:-10}
soak=${3:-300}
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 1; }

go build -o bin/telguard ./cmd/telguard
echo "== SIP edge: phase 1 (${step}s per rate) and phase 2 (flood at full speed, ${flood}s)"
bin/telguard bench-sip --policy examples/bench/sip-policy.yaml --rates 200,500,1000,1500 \
	--step "${step}s" --flood "${flood}s" --flood-rate 0 --flood-cps 200
echo
echo "== SIP edge: phase 2 again, flood at 120,000 packets/s (${flood}s)"
bin/telguard bench-sip --policy examples/bench/sip-policy.yaml --rates "" \
	--flood "${flood}s" --flood-rate 120000 --flood-cps 200
echo
echo "== SIP edge: flood soak, full speed, ${soak}s on a fresh guard"
bin/telguard bench-sip --policy examples/bench/sip-policy.yaml --rates "" \
	--flood "${soak}s" --flood-rate 0 --flood-cps 200 --sample 30s
