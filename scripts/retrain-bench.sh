#!/usr/bin/env bash
# Measures decision-API latency while the daemon retrains the anomaly model
# (docs/BENCHMARKS.md §7, "Retraining the anomaly model"). Usage:
#   retrain-bench.sh BINARY   (run from a directory holding retrain.yaml and
#   data/telguard.db with the imported history; /tmp/rtb/loadgen built)
set -u
cd "${RTB_DIR:-/tmp/rtb/w}"
rm -f data/anomaly.model
export TELGUARD_API_KEY=bench-key-0123456789abcdef
$1 serve --config retrain.yaml > serve.out 2> serve.log &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18099/readyz && break; sleep 0.1; done
echo "$1 during: $(/tmp/rtb/loadgen http://127.0.0.1:18099 $TELGUARD_API_KEY 7s 100)"
for i in $(seq 120); do grep -q "anomaly model retrained" serve.log && break; sleep 1; done
echo "$1 retrain: $(grep -o 'duration=[^ ]*' serve.log) $(grep VmHWM /proc/$PID/status)"
echo "$1 idle: $(/tmp/rtb/loadgen http://127.0.0.1:18099 $TELGUARD_API_KEY 7s 100)"
