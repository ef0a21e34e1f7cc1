#!/usr/bin/env bash
# Reproduces section 4 of docs/BENCHMARKS.md, the SIP edge, with SIPp
# (Debian's sip-tester) on this machine, everything on 127.0.0.0/8:
#   1. calls/s forwarded with zero failures, SIPp straight to the PBX vs
#      through the guard, and the latency the guard adds (p50/p99), at
#      200, 500, 1000 and 1500 calls/s;
#   2. a banned source flooding the guard while SIPp calls through it:
#      packets/s dropped, the calls' success rate, the guard's peak RSS —
#      once at the flooder's full speed, once at 120,000 packets/s.
# Every SIPp run has -m and -timeout and the flood has a duration, so the
# script ends by itself (about 6 minutes with the defaults).
# Usage: scripts/bench-sip.sh [flood-seconds (default 60)] [seconds-per-rate (default 10)]
set -euo pipefail
cd "$(dirname "$0")/.."
flood=${1:-60}
step=${2:-10}
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 1; }

go build -o bin/telguard ./cmd/telguard
echo "== SIP edge: phase 1 (${step}s per rate) and phase 2 (flood at full speed, ${flood}s)"
bin/telguard bench-sip --policy examples/bench/sip-policy.yaml --rates 200,500,1000,1500 \
	--step "${step}s" --flood "${flood}s" --flood-rate 0 --flood-cps 200
echo
echo "== SIP edge: phase 2 again, flood at 120,000 packets/s (${flood}s)"
bin/telguard bench-sip --policy examples/bench/sip-policy.yaml --rates "" \
	--flood "${flood}s" --flood-rate 120000 --flood-cps 200
